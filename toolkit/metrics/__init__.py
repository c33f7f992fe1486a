"""Metrics as the paper reports them: PSNR-Y and SSIM-Y, LPIPS, and evaluation of a model (or an
exported file) against bicubic on a set of photos."""
