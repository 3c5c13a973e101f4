"""Export (HF, GGUF, quantizations), Ollama serving and the chat demo (docs/export.md)."""

import logging

# llama-cpp-python echoes every llama.cpp log line (the quantizer's per-tensor table, loader
# dumps) to stderr unless its logger is raised; the export report states what matters.
logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
