"""`python -m amplifier_module_provider_chat_completions`: the command line (cli/main.py)."""

from .cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
