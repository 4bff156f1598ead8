"""The OpenAI-compatible gateway in front of llama.cpp that settles every job on chain."""
