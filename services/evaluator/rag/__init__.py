"""The RAG baseline (design §9): chunk the clean corpus, embed it, index it in ChromaDB, answer with Ollama."""
