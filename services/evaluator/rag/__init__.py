"""The RAG baseline (docs/rag.md): chunk the clean corpus, embed it, index it in ChromaDB, answer with Ollama."""
