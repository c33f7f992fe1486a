"""Cost models and measurements: MultAdds now, latency and reports as they land."""
