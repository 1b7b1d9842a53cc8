"""Where the API key lives: one module per store (OS keyring, encrypted file, environment or standard
input, the sandbox file) and the run's custody of the key and the key passphrase."""
