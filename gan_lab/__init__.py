"""gan_lab: config-driven GAN experiments on MNIST-like data."""
