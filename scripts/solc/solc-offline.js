#!/usr/bin/env node
// Offline solc for py-solc-x and brownie.
//
// py-solc-x treats any executable named `solc-v<version>` in its install folder as an installed
// compiler. It calls `--version`, `--standard-json` (JSON on stdin) and, for interface ABIs,
// `--combined-json abi -` (source on stdin). This script answers those calls with the official
// compiler from the npm package `solc` (WebAssembly), so nothing is downloaded at compile time.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require(path.join(__dirname, "..", "..", "node_modules", "solc"));

function readImport(importPath) {
  const candidates = [importPath, path.resolve(process.cwd(), importPath)];
  for (const candidate of candidates) {
    if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
      return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  return { error: `File not found: ${importPath}` };
}

function compileStandard(input) {
  return JSON.parse(solc.compile(JSON.stringify(input), { import: readImport }));
}

function flagValue(args, name) {
  const at = args.indexOf(name);
  return at === -1 ? undefined : args[at + 1];
}

function combinedJson(args, source) {
  const outputs = flagValue(args, "--combined-json").split(",");
  const settings = { outputSelection: { "*": { "*": outputs } } };
  const evmVersion = flagValue(args, "--evm-version");
  if (evmVersion) settings.evmVersion = evmVersion;
  const result = compileStandard({
    language: "Solidity",
    sources: { "<stdin>": { content: source } },
    settings,
  });
  const errors = (result.errors || []).filter((e) => e.severity === "error");
  if (errors.length) {
    process.stderr.write(errors.map((e) => e.formattedMessage).join("\n"));
    process.exit(1);
  }
  const contracts = {};
  for (const [file, byName] of Object.entries(result.contracts || {})) {
    for (const [name, output] of Object.entries(byName)) {
      contracts[`${file}:${name}`] = { abi: output.abi };
    }
  }
  return { contracts, version: solc.version() };
}

function main() {
  const args = process.argv.slice(2);
  if (args.includes("--version")) {
    process.stdout.write(
      `solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`,
    );
    return;
  }
  const stdin = fs.readFileSync(0, "utf8");
  if (args.includes("--standard-json")) {
    process.stdout.write(JSON.stringify(compileStandard(JSON.parse(stdin))));
  } else if (args.includes("--combined-json")) {
    process.stdout.write(JSON.stringify(combinedJson(args, stdin)));
  } else {
    process.stderr.write(`solc-offline: unsupported arguments: ${args.join(" ")}\n`);
    process.exit(2);
  }
}

main();
