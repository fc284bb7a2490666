// Validates an AsyncAPI document with the official parser (@asyncapi/parser),
// offline. Usage: node tests/browser/validate-asyncapi.mjs FILE
// Exit 0: valid, no error or warning diagnostics (info and hints are printed).
import fs from "node:fs";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
const { document, diagnostics } = await new Parser().parse(fs.readFileSync(file, "utf8"));
const SEV = ["error", "warning", "info", "hint"];
let bad = 0;
for (const d of diagnostics) {
  if (d.severity <= 1) bad++;
  console.log(`${SEV[d.severity] || d.severity} ${d.code} ${JSON.stringify(d.path)}: ${d.message}`);
}
console.log(document && !bad ? "VALID" : "INVALID");
process.exit(document && !bad ? 0 : 1);
