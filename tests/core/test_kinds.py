"""The kind table is the one source of kinds, hooks and recipe tables: it must agree with the schema."""

import attrs

from specmatch.core import hookspecs, schema
from specmatch.core.kinds import KIND_OF_TABLE, KINDS
from specmatch.core.structure import resolve_types_deep


def test_every_kind_names_a_recipe_table_and_a_hook():
    resolve_types_deep(schema.Recipe)
    fields = attrs.fields_dict(schema.Recipe)
    for kind in KINDS.values():
        assert hasattr(hookspecs, kind.hook), kind
        if kind.named_in:  # chosen by a list of names inside another table, e.g. evaluation.metrics
            table, key = kind.named_in.split(".")
            assert key in attrs.fields_dict(fields[table].type), kind
            assert kind.table not in fields, kind  # its nominal table must not shadow a recipe table
            continue
        assert kind.table in fields, kind
        assert hasattr(hookspecs, kind.hook), kind
        assert kind.spec_class.kind == kind.name
        is_array = Ellipsis in getattr(fields[kind.table].type, "__args__", ())
        assert is_array == kind.array, kind
    assert len(KIND_OF_TABLE) == len(KINDS)
