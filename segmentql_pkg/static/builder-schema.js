// What the rule language offers, read from the service's own introspection: the conditions
// (every field of RuleInput but the groups) and every input type, enum and scalar their
// values are made of. Nothing here knows any condition: a plugin's shows up by itself.

import { GROUPS } from "./builder-rule.js";

const TYPE_REF = "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

export const INTROSPECTION = `query BuilderSchema {
  __schema { types { kind name description
    inputFields { name description defaultValue type { ${TYPE_REF} } }
    enumValues { name description } } }
}`;

// The model the forms are built from: `types` by name, `conditions` in RuleInput's order.
export function schemaModel(data) {
  const types = new Map(data.__schema.types.map((type) => [type.name, type]));
  const rule = types.get("RuleInput");
  if (!rule || !rule.inputFields) throw new Error("the service's schema has no RuleInput");
  const conditions = rule.inputFields.filter((field) => !GROUPS.includes(field.name));
  return { types, conditions, condition: (name) => conditions.find((field) => field.name === name) || null };
}

// A field must be given when its type is non-null and it has no default.
export function isRequired(field) {
  return field.type.kind === "NON_NULL" && field.defaultValue === null;
}

// `value[name]` if `value` has it itself: a field named `constructor` or `toString` (a
// plugin's) must not read what every object inherits.
export function own(value, name) {
  return Object.hasOwn(value, name) ? value[name] : undefined;
}

export function nullable(ref) {
  return ref.kind === "NON_NULL" ? ref.ofType : ref;
}

// The paths (relative to `value`, as in `daysSinceSent.value` or `in[0]`) of required values
// not given yet, so a half-filled condition is marked as such instead of being sent.
export function missing(model, ref, value, path = "") {
  if (value === undefined || value === null) return ref.kind === "NON_NULL" ? [path] : [];
  const type = nullable(ref);
  if (type.kind === "LIST") {
    return Array.isArray(value) ? value.flatMap((item, i) => missing(model, type.ofType, item, `${path}[${i}]`)) : [];
  }
  if (type.kind !== "INPUT_OBJECT") return [];
  const fields = model.types.get(type.name).inputFields;
  return fields.flatMap((field) => {
    const here = path ? `${path}.${field.name}` : field.name;
    const given = own(value, field.name);
    if (given === undefined) return isRequired(field) ? [here] : [];
    return missing(model, field.type, given, here);
  });
}
