"""The schema documents itself (every type, field, argument, enum value and
input field has a description) and schema.graphql in the repository is the
SDL the service serves."""


from segmentql.schema import build_schema

from .conftest import REPO

BUILTIN_SCALARS = {"String", "Int", "Float", "Boolean", "ID"}
INTROSPECT = """{ __schema { types { name kind description
  fields { name description args { name description } }
  inputFields { name description }
  enumValues { name description } } } }"""


def test_everything_in_the_schema_has_a_description(gql):
    missing = []
    for t in gql.graphql(INTROSPECT)["__schema"]["types"]:
        if t["name"].startswith("__") or t["name"] in BUILTIN_SCALARS:
            continue
        if not t["description"]:
            missing.append(t["name"])
        for f in t["fields"] or []:
            if not f["description"]:
                missing.append(f"{t['name']}.{f['name']}")
            missing += [f"{t['name']}.{f['name']}({a['name']})" for a in f["args"] if not a["description"]]
        missing += [f"{t['name']}.{f['name']}" for f in t["inputFields"] or [] if not f["description"]]
        missing += [f"{t['name']}.{v['name']}" for v in t["enumValues"] or [] if not v["description"]]
    assert missing == []


def test_schema_graphql_is_current(registry):
    exported = (REPO / "schema.graphql").read_text()
    assert exported == build_schema(registry).as_str() + "\n", (
        "schema.graphql is stale: run `make schema` (segmentql schema > schema.graphql)")
