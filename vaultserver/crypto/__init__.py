"""Key store (master keys), envelope data keys, the at-rest file format and TLS certificates."""
