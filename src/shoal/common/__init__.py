"""Small shared building blocks that every layer may import."""
