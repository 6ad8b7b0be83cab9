"""Ids that YAML turned into numbers: where a study file wrote gauge ids without quotes.

YAML reads ``01022500`` as an integer: leading zeros are lost, and a YAML 1.1 loader (PyYAML) reads
a 0-prefixed id of the digits 0-7 as octal (``01022500`` becomes 271680). The parsed value cannot
say what was written, so :func:`unquoted_ids` reads the file's node tree for the original text and
its line, for an error that names both.
"""

from __future__ import annotations

import yaml

_INT = "tag:yaml.org,2002:int"


def unquoted_ids(text: str, key: str = "gauges") -> list[tuple[int, str]]:
    """(line, text as written) of every integer scalar listed under ``key`` anywhere in the YAML
    document ``text``; empty when ``text`` is not valid YAML."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return []
    found: list[tuple[int, str]] = []
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    items = v.value if isinstance(v, yaml.SequenceNode) else [v]
                    found += [
                        (i.start_mark.line + 1, str(i.value))
                        for i in items
                        if isinstance(i, yaml.ScalarNode) and i.tag == _INT
                    ]
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return sorted(found)
