"""Run mongosh code (``explainSegment(format: MONGOSH)``) in node, with no
mongosh and no database: the shell's constructors are defined to give back
the canonical Extended JSON of the BSON value mongosh would send, numbers
typed as mongosh types them (Int32 when a whole number fits 32 bits, else
Double), and ``db.getCollection(c).aggregate(p)`` returns ``{collection, pipeline}``.
So :func:`run` answers with the BSON document mongosh would send, to compare
with what the service runs."""

import datetime as dt
import subprocess

from bson import json_util
from bson.json_util import JSONOptions

SHELL = r"""
"use strict";
const ISODate = (s) => ({$date: {$numberLong: String(Date.parse(s))}});
const NumberLong = (s) => {
  if (typeof s !== "string") throw new TypeError("mongosh's NumberLong takes a string");
  return {$numberLong: s};
};
const Double = (x) => ({$numberDouble: Object.is(x, -0) ? "-0.0" : String(x)});
const NumberDecimal = (s) => ({$numberDecimal: s});
const ObjectId = (s) => ({$oid: s});
const BSONRegExp = (pattern, options) => ({$regularExpression: {pattern, options}});
const EJSON = {parse: JSON.parse};
const db = {getCollection: (collection) => ({aggregate: (pipeline) => ({collection, pipeline})})};
const typed = (_key, v) => typeof v !== "number" ? v
  : Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31 && !Object.is(v, -0) ? {$numberInt: String(v)}
  : {$numberDouble: Object.is(v, -0) ? "-0.0" : String(v)};
process.stdout.write(JSON.stringify(
"""


def run(code: str) -> dict:
    """The document ``code`` evaluates to, as BSON values (instants aware, in UTC)."""
    program = SHELL + code + ", typed));\n"
    done = subprocess.run(["node", "-"], input=program, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json_util.loads(done.stdout, json_options=JSONOptions(tz_aware=True, tzinfo=dt.UTC))
