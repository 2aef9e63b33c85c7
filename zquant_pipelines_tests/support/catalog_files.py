"""Task catalogs written the way a person writes tasks.yaml: values spelled out.

PyYAML's dumper writes a value used twice (one ``dependencies`` list shared by two members)
as an anchor and an alias, which the catalog loader refuses, as it refuses every alias.
"""

import yaml


class _SpelledOutDumper(yaml.SafeDumper):
    def ignore_aliases(self, data) -> bool:
        return True


def catalog_text(tasks: list[dict]) -> str:
    """tasks.yaml's text for ``tasks``, in their order, without anchors or aliases."""
    return yaml.dump({"tasks": tasks}, Dumper=_SpelledOutDumper, sort_keys=False)
