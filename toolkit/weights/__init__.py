"""Weights: our checkpoint format, the authors' releases (import, registry, download), loading by
name or path, a safe unpickler, and third-party weights (LPIPS, VGG16) taken from registry packages."""
