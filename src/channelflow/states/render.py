"""The lifecycle as JSON, Mermaid or Graphviz DOT."""

from __future__ import annotations

import json

from channelflow.states.spec import Lifecycle


def as_dict(lifecycle: Lifecycle) -> dict[str, object]:
    return {
        "initial": lifecycle.initial,
        "states": list(lifecycle.states),
        "transitions": [
            {
                "event": spec.name,
                "source": source,
                "dest": spec.dest,
                "roles": sorted(spec.roles),
                "requires": spec.requires,
            }
            for spec in lifecycle.events
            for source in spec.sources
        ],
    }


def as_json(lifecycle: Lifecycle) -> str:
    return json.dumps(as_dict(lifecycle), indent=2)


def as_mermaid(lifecycle: Lifecycle) -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {lifecycle.initial}"]
    for spec in lifecycle.events:
        roles = ", ".join(sorted(spec.roles))
        lines += [
            f"    {source} --> {spec.dest} : {spec.name} ({roles})" for source in spec.sources
        ]
    terminal = {
        s
        for s in lifecycle.states
        if all(s not in e.sources or e.dest == s for e in lifecycle.events)
    }
    lines += [f"    {state} --> [*]" for state in lifecycle.states if state in terminal]
    return "\n".join(lines) + "\n"


def as_dot(lifecycle: Lifecycle) -> str:
    lines = [
        f'digraph "{lifecycle.name}" {{',
        "    rankdir=LR;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    "__start" [shape=point, label=""];',
        f'    "__start" -> "{lifecycle.initial}";',
    ]
    lines += [f'    "{state}";' for state in lifecycle.states]
    for spec in lifecycle.events:
        roles = ", ".join(sorted(spec.roles))
        lines += [
            f'    "{source}" -> "{spec.dest}" [label="{spec.name}\\n({roles})"];'
            for source in spec.sources
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


FORMATS = {"json": as_json, "mermaid": as_mermaid, "dot": as_dot}
