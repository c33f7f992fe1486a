"""Training (section 3.5): the two-stage trainer, learning-rate recipes, the optimizer step, the
perceptual network of the GAN stage, the run log and multi-process runs."""
