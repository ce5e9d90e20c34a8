"""Corpus of malformed model output, shaped like what small local models really send.

Two kinds of case:
- ArgumentCase: the `arguments` string of a native tool call -> expected dict, or None when
  an ArgumentsError is expected.
- TextCase: message content from a server that did not parse tool calls -> the remaining
  text and the calls (arguments None: the call is recognised but carries an error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OFFERED: tuple[str, ...] = (
    "read_file",
    "write_file",
    "edit_file",
    "bash",
    "get_weather",
    "web_search",
    "todo_write",
    "grep",
)


@dataclass(frozen=True)
class ArgumentCase:
    id: str
    raw: str
    expected: dict[str, Any] | None
    tool: str = "read_file"


@dataclass(frozen=True)
class TextCase:
    id: str
    raw: str
    text: str
    calls: tuple[tuple[str, dict[str, Any] | None], ...]


ARGUMENT_CASES: tuple[ArgumentCase, ...] = (
    ArgumentCase("valid-fast-path", '{"path": "src/app.py"}', {"path": "src/app.py"}),
    ArgumentCase("empty-string", "", {}),
    ArgumentCase("whitespace-only", "  \n", {}),
    ArgumentCase("trailing-comma-object", '{"path": "README.md",}', {"path": "README.md"}),
    ArgumentCase(
        "trailing-comma-array",
        '{"pattern": "TODO", "paths": ["src", "tests",],}',
        {"pattern": "TODO", "paths": ["src", "tests"]},
        tool="grep",
    ),
    ArgumentCase(
        "single-quotes",
        "{'command': 'ls -la /tmp'}",
        {"command": "ls -la /tmp"},
        tool="bash",
    ),
    ArgumentCase(
        "unquoted-keys",
        "{\n  path: 'src/main.py',\n  line: 10\n}",
        {"path": "src/main.py", "line": 10},
    ),
    ArgumentCase(
        "python-literals",
        "{'command': 'pytest -x', 'timeout': None, 'background': False, 'verbose': True}",
        {"command": "pytest -x", "timeout": None, "background": False, "verbose": True},
        tool="bash",
    ),
    ArgumentCase(
        "raw-newlines-in-string",
        '{"path": "hello.py", "content": "def main():\n    print(\'hi\')\n"}',
        {"path": "hello.py", "content": "def main():\n    print('hi')\n"},
        tool="write_file",
    ),
    ArgumentCase(
        "raw-tab-in-string",
        '{"path": "Makefile", "content": "all:\n\tgo build"}',
        {"path": "Makefile", "content": "all:\n\tgo build"},
        tool="write_file",
    ),
    ArgumentCase(
        "truncated-mid-string",
        '{"path": "notes.md", "content": "# Notes\\n\\nFirst item',
        {"path": "notes.md", "content": "# Notes\n\nFirst item"},
        tool="write_file",
    ),
    ArgumentCase(
        "truncated-after-key",
        '{"path": "a.txt", "content',
        {"path": "a.txt"},
        tool="write_file",
    ),
    ArgumentCase(
        "truncated-nested-list",
        '{"todos": [{"content": "Fix bug", "status": "pending"}, {"content": "Write te',
        {
            "todos": [
                {"content": "Fix bug", "status": "pending"},
                {"content": "Write te"},
            ]
        },
        tool="todo_write",
    ),
    ArgumentCase(
        "truncated-after-comma", '{"city": "Oslo", ', {"city": "Oslo"}, tool="get_weather"
    ),
    ArgumentCase(
        "code-fence-json",
        '```json\n{"city": "Paris", "units": "metric"}\n```',
        {"city": "Paris", "units": "metric"},
        tool="get_weather",
    ),
    ArgumentCase(
        "code-fence-bare",
        '```\n{"query": "rust async book",}\n```',
        {"query": "rust async book"},
        tool="web_search",
    ),
    ArgumentCase(
        "double-encoded",
        '"{\\"path\\": \\"setup.cfg\\"}"',
        {"path": "setup.cfg"},
    ),
    ArgumentCase(
        "double-encoded-with-trailing-comma",
        '"{\\"path\\": \\"a.txt\\",}"',
        {"path": "a.txt"},
    ),
    ArgumentCase(
        "leading-prose",
        'Sure, here are the arguments: {"query": "weather in Lima"}',
        {"query": "weather in Lima"},
        tool="web_search",
    ),
    ArgumentCase(
        "trailing-prose",
        '{"city": "Tokyo"} I hope this helps!',
        {"city": "Tokyo"},
        tool="get_weather",
    ),
    ArgumentCase(
        "prose-and-fence",
        'Here are the arguments:\n```json\n{"city": "Paris"}\n```\nLet me know!',
        {"city": "Paris"},
        tool="get_weather",
    ),
    ArgumentCase(
        "line-comment",
        '{"path": "a.py", // the file to read\n "limit": 20}',
        {"path": "a.py", "limit": 20},
    ),
    ArgumentCase(
        "fence-inside-string-kept",
        '{"path": "README.md", "content": "```bash\\nmake\\n```",}',
        {"path": "README.md", "content": "```bash\nmake\n```"},
        tool="write_file",
    ),
    ArgumentCase(
        "unescaped-inner-quotes",
        '{"query": "python "asyncio" tutorial"}',
        {"query": 'python "asyncio" tutorial'},
        tool="web_search",
    ),
    ArgumentCase(
        "raw-newlines-and-inner-quotes",
        '{"path": "hello.py", "content": "def main():\n    print("hi")"}',
        {"path": "hello.py", "content": 'def main():\n    print("hi")'},
        tool="write_file",
    ),
    ArgumentCase("extra-closing-brace", '{"path": "x.txt"}}', {"path": "x.txt"}),
    # Not JSON at all: must be an error, never an invented {}.
    ArgumentCase("prose-only", "hello there", None),
    ArgumentCase("refusal", "I cannot read that file without a path.", None),
    ArgumentCase("key-equals-value", "path=src/app.py", None),
    ArgumentCase("json-array", '["src/app.py"]', None),
    ArgumentCase("json-string", '"src/app.py"', None),
    ArgumentCase("json-number", "42", None),
    ArgumentCase("braced-prose", "{the path of the file}", None),
)


OPEN_CALL = "<tool_call>"
CLOSE_CALL = "</tool_call>"

TEXT_CASES: tuple[TextCase, ...] = (
    TextCase(
        "hermes-single-with-prose",
        'I will read the file first.\n<tool_call>\n{"name": "read_file", "arguments": '
        '{"path": "src/app.py"}}\n</tool_call>',
        "I will read the file first.",
        (("read_file", {"path": "src/app.py"}),),
    ),
    TextCase(
        "hermes-two-calls",
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "b.py"}}\n</tool_call>',
        "",
        (("read_file", {"path": "a.py"}), ("read_file", {"path": "b.py"})),
    ),
    TextCase(
        "hermes-unclosed-truncated",
        'Checking the weather.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par',
        "Checking the weather.",
        (("get_weather", {"city": "Par"}),),
    ),
    TextCase(
        "hermes-missing-close-before-next",
        '<tool_call>{"name": "bash", "arguments": {"command": "ls"}}\n'
        '<tool_call>{"name": "bash", "arguments": {"command": "pwd"}}</tool_call>',
        "",
        (("bash", {"command": "ls"}), ("bash", {"command": "pwd"})),
    ),
    TextCase(
        "hermes-single-quoted",
        "<tool_call>\n{'name': 'bash', 'arguments': {'command': 'git status', 'cwd': None}}\n"
        "</tool_call>",
        "",
        (("bash", {"command": "git status", "cwd": None}),),
    ),
    TextCase(
        "hermes-arguments-as-string",
        '<tool_call>\n{"name": "grep", "arguments": "{\\"pattern\\": \\"def main\\"}"}\n'
        "</tool_call>",
        "",
        (("grep", {"pattern": "def main"}),),
    ),
    TextCase(
        "hermes-functions-prefix",
        '<tool_call>\n{"name": "functions.read_file", "arguments": {"path": "x"}}\n</tool_call>',
        "",
        (("read_file", {"path": "x"}),),
    ),
    TextCase(
        "hermes-wrong-case",
        '<tool_call>{"name": "Web_Search", "arguments": {"query": "uv lockfile"}}</tool_call>',
        "",
        (("web_search", {"query": "uv lockfile"}),),
    ),
    TextCase(
        "hermes-unknown-tool-left-alone",
        'Let me try.\n<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>',
        'Let me try.\n<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>',
        (),
    ),
    TextCase(
        "hermes-bad-arguments-error",
        '<tool_call>{"name": "read_file", "arguments": "path is README"}</tool_call>',
        "",
        (("read_file", None),),
    ),
    TextCase(
        "hermes-missing-braces-error",
        '<tool_call>\n"name": "bash", "arguments": "ls -la"\n</tool_call>',
        "",
        (("bash", None),),
    ),
    TextCase(
        "hermes-fenced-body",
        '<tool_call>\n```json\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n```\n'
        "</tool_call>",
        "",
        (("get_weather", {"city": "Rome"}),),
    ),
    TextCase(
        "hermes-no-arguments-key",
        '<tool_call>{"name": "todo_write"}</tool_call>',
        "",
        (("todo_write", {}),),
    ),
    TextCase(
        "hermes-trailing-comma-and-text-after",
        '<tool_call>{"name": "bash", "arguments": {"command": "make test",},}</tool_call>\n'
        "Running the tests now.",
        "Running the tests now.",
        (("bash", {"command": "make test"}),),
    ),
    TextCase(
        "qwen3-coder-xml",
        "<tool_call>\n<function=write_file>\n<parameter=path>\nhello.py\n</parameter>\n"
        "<parameter=content>\nprint('hi')\n</parameter>\n</function>\n</tool_call>",
        "",
        (("write_file", {"path": "hello.py", "content": "print('hi')"}),),
    ),
    TextCase(
        "mistral-list",
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}, '
        '{"name": "get_weather", "arguments": {"city": "Lyon"}}]',
        "",
        (("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Lyon"})),
    ),
    TextCase(
        "mistral-list-with-prose-before",
        'Sure.[TOOL_CALLS] [{"name": "web_search", "arguments": {"query": "vllm"}}]',
        "Sure.",
        (("web_search", {"query": "vllm"}),),
    ),
    TextCase(
        "mistral-args-token",
        '[TOOL_CALLS]read_file[ARGS]{"path": "pyproject.toml"}',
        "",
        (("read_file", {"path": "pyproject.toml"}),),
    ),
    TextCase(
        "mistral-name-brace",
        '[TOOL_CALLS]bash{"command": "uname -a"}[TOOL_CALLS]bash{"command": "df -h"}',
        "",
        (("bash", {"command": "uname -a"}), ("bash", {"command": "df -h"})),
    ),
    TextCase(
        "mistral-call-id",
        '[TOOL_CALLS]grep[CALL_ID]a1b2c3d4e[ARGS]{"pattern": "TODO"}',
        "",
        (("grep", {"pattern": "TODO"}),),
    ),
    TextCase(
        "mistral-truncated-list",
        '[TOOL_CALLS][{"name": "write_file", "arguments": {"path": "a.md", "content": "# Ti',
        "",
        (("write_file", {"path": "a.md", "content": "# Ti"}),),
    ),
    TextCase(
        "mistral-unknown-name-left-alone",
        "[TOOL_CALLS]launch_rocket[ARGS]{}",
        "[TOOL_CALLS]launch_rocket[ARGS]{}",
        (),
    ),
    TextCase(
        "llama-python-tag",
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Berlin"}}',
        "",
        (("get_weather", {"city": "Berlin"}),),
    ),
    TextCase(
        "llama-python-tag-two-calls-eom",
        '<|python_tag|>{"name": "read_file", "parameters": {"path": "a"}}; '
        '{"name": "read_file", "parameters": {"path": "b"}}<|eom_id|>',
        "",
        (("read_file", {"path": "a"}), ("read_file", {"path": "b"})),
    ),
    TextCase(
        "llama-python-tag-code-left-alone",
        "<|python_tag|>print(2 + 2)",
        "<|python_tag|>print(2 + 2)",
        (),
    ),
    TextCase(
        "llama-bare-parameters",
        '{"name": "web_search", "parameters": {"query": "llama 3.2 tool calling"}}',
        "",
        (("web_search", {"query": "llama 3.2 tool calling"}),),
    ),
    TextCase(
        "llama-bare-with-type-and-eot",
        '\n{"type": "function", "name": "get_weather", "parameters": {"city": "Oslo"}}<|eot_id|>',
        "",
        (("get_weather", {"city": "Oslo"}),),
    ),
    TextCase(
        "bare-arguments-python-literals",
        '{"name": "bash", "arguments": {"command": "ls", "background": False}}',
        "",
        (("bash", {"command": "ls", "background": False}),),
    ),
    TextCase(
        "bare-openai-shape",
        '{"type": "function", "function": {"name": "read_file", "arguments": '
        '"{\\"path\\": \\"main.go\\"}"}}',
        "",
        (("read_file", {"path": "main.go"}),),
    ),
    TextCase(
        "bare-list-of-calls",
        '[{"name": "grep", "arguments": {"pattern": "x"}}, '
        '{"name": "grep", "arguments": {"pattern": "y"}}]',
        "",
        (("grep", {"pattern": "x"}), ("grep", {"pattern": "y"})),
    ),
    TextCase(
        "json-answer-left-alone",
        '{"name": "Bob", "age": 3}',
        '{"name": "Bob", "age": 3}',
        (),
    ),
    TextCase(
        "json-answer-with-tool-name-but-extra-keys",
        '{"name": "grep", "description": "searches files", "stars": 5}',
        '{"name": "grep", "description": "searches files", "stars": 5}',
        (),
    ),
    TextCase(
        "json-tool-description-left-alone",
        '{"name": "bash", "parameters": {"command": "string"}, "description": "Run a command"}',
        '{"name": "bash", "parameters": {"command": "string"}, "description": "Run a command"}',
        (),
    ),
    TextCase(
        "bare-call-followed-by-prose-left-alone",
        '{"name": "bash", "parameters": {"command": "ls"}} is how you would call it.',
        '{"name": "bash", "parameters": {"command": "ls"}} is how you would call it.',
        (),
    ),
    TextCase(
        "json-array-answer-left-alone",
        "[1, 2, 3]",
        "[1, 2, 3]",
        (),
    ),
    TextCase(
        "markdown-link-start-left-alone",
        "[Docs](https://example.com) explain the `<function=...>` syntax.",
        "[Docs](https://example.com) explain the `<function=...>` syntax.",
        (),
    ),
    TextCase(
        "functionary-function-tag",
        'Let me check.<function=get_weather>{"city": "Madrid"}</function>',
        "Let me check.",
        (("get_weather", {"city": "Madrid"}),),
    ),
    TextCase(
        "function-tag-repaired-args-then-prose",
        "<function=edit_file>{'path': 'a.py', 'old': 'x', 'new': 'y',}</function>\nDone.",
        "Done.",
        (("edit_file", {"path": "a.py", "old": "x", "new": "y"}),),
    ),
    TextCase(
        "function-tag-bad-args-error",
        "<function=bash>run the tests please</function>",
        "",
        (("bash", None),),
    ),
    TextCase(
        "prose-mentioning-tag-left-alone",
        "Qwen models wrap calls in <tool_call> tags; that is all.",
        "Qwen models wrap calls in <tool_call> tags; that is all.",
        (),
    ),
    # Qwen2.5-Coder-0.5B-Instruct on llama-server with its own template, offered get_weather:
    # its three answer shapes, verbatim.
    TextCase(
        "qwen-coder-bare-call",
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        "",
        (("get_weather", {"city": "Paris"}),),
    ),
    TextCase(
        "qwen-coder-fenced-call",
        '```json\n{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Paris"\n  }\n}\n```',
        "",
        (("get_weather", {"city": "Paris"}),),
    ),
    # A call object after prose is an example in an explanation, not a call (this one was
    # also cut by the token limit).
    TextCase(
        "qwen-coder-prose-then-call-left-alone",
        'Here is the response:\n\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n{',
        'Here is the response:\n\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n{',
        (),
    ),
    TextCase(
        "fenced-bare-fence-and-padding",
        '\n```\n{"name": "bash", "arguments": {"command": "ls"}}\n```\n',
        "",
        (("bash", {"command": "ls"}),),
    ),
    TextCase(
        "fenced-list-of-calls",
        '```json\n[{"name": "grep", "arguments": {"pattern": "x"}}, '
        '{"name": "grep", "arguments": {"pattern": "y"}}]\n```',
        "",
        (("grep", {"pattern": "x"}), ("grep", {"pattern": "y"})),
    ),
    TextCase(
        "fenced-json-answer-left-alone",
        '```json\n{"name": "Bob", "age": 3}\n```',
        '```json\n{"name": "Bob", "age": 3}\n```',
        (),
    ),
    TextCase(
        "fenced-call-then-prose-left-alone",
        '```json\n{"name": "bash", "arguments": {"command": "ls"}}\n```\nThat lists files.',
        '```json\n{"name": "bash", "arguments": {"command": "ls"}}\n```\nThat lists files.',
        (),
    ),
    TextCase(
        "fenced-python-left-alone",
        "```python\nprint({'name': 'bash'})\n```",
        "```python\nprint({'name': 'bash'})\n```",
        (),
    ),
    TextCase(
        "fenced-prose-left-alone",
        "```\nname: bash\n```",
        "```\nname: bash\n```",
        (),
    ),
    TextCase(
        "plain-prose",
        "The answer is 42. Arrays look like [1, 2] and objects like {a: 1}.",
        "The answer is 42. Arrays look like [1, 2] and objects like {a: 1}.",
        (),
    ),
)
