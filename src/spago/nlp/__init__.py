"""spago.nlp: tokenizers, transformer models, Hugging Face import and task pipelines."""
