"""Request and response models of each endpoint group."""
