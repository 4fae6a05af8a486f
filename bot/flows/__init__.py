"""Conversation flows: the model, the loader with file:line errors, the interpreter and the Babel extractor."""
