"""Model cards: shipping a trained run under models/ with its card, and the GAN models' cards (LPIPS
beside PSNR-Y, perception-distortion plot, side-by-side crops)."""
