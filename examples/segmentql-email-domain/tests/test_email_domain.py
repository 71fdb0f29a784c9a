"""Tests with segmentql's test kit: the ``segmentql`` fixture is a real service
on an embedded database, with this installed plugin loaded."""


def test_field_is_registered(segmentql):
    types = segmentql.graphql("{ conditionTypes { field plugin } }")["conditionTypes"]
    assert {"field": "emailDomain", "plugin": "email_domain"} in types


def test_members_by_domain(segmentql):
    segmentql.import_generated(contacts=120, seed=5)
    io = segmentql.members({"emailDomain": {"in": ["EXAMPLE.IO"]}})
    others = segmentql.members({"emailDomain": {"notIn": ["example.io"]}})
    everyone = segmentql.members({"not": {"emailDomain": {"in": ["nobody.invalid"]}}})
    assert io and others and sorted(io + others) == everyone
    emails = {e["node"]["id"]: e["node"]["email"] for e in segmentql.graphql(
        '{ segmentPreview(rule: {emailDomain: {in: ["example.io"]}}) '
        '{ contacts(first: 1000) { edges { node { id email } } } } }')["segmentPreview"]["contacts"]["edges"]}
    assert all(email.endswith("@example.io") for email in emails.values())


def test_a_bad_domain_is_an_invalid_rule(segmentql):
    errors = segmentql.errors('{ segmentPreview(rule: {any: [{emailDomain: {in: ["a@b.com"]}}]}) { count } }')
    assert errors[0]["extensions"]["code"] == "INVALID_RULE"
    assert errors[0]["message"].startswith("any[0].emailDomain:")


def test_explain_membership_shows_the_domain(segmentql):
    segmentql.graphql('mutation { upsertContacts(contacts: [{id: "x", email: "Ann@Example.IO"}]) { accepted } }')
    node = segmentql.graphql('{ explainMembership(contactId: "x", rule: {emailDomain: {notIn: ["example.io"]}}) '
                             '{ nodes { matched values { label value needed } } } }')["explainMembership"]["nodes"][0]
    assert node == {"matched": False, "values": [{"label": "email domain", "value": "example.io",
                                                  "needed": "none of example.io"}]}
