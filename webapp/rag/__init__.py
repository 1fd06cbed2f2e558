"""Documents: pdf -> pages -> chunks -> embeddings -> store -> retrieval -> prompt."""
