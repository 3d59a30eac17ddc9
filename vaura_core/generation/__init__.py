"""Token generation: sampling, classifier-free guidance, the cached decoder and the uncached oracle."""
