"""Amplifier provider for OpenAI Chat Completions compatible servers."""
