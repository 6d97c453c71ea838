"""Request and response models (the wire format)."""
