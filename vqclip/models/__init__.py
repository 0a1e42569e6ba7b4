"""Model definitions and loading: VQGAN generators and CLIP perceptors."""
