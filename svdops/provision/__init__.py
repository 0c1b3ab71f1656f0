"""`svdops provision`: bring hosts to a profile. `plan` makes the requested stack concrete and validates it
before anything runs; `run` applies playbooks/ through ansible-runner (its only importer)."""
