// Validates Strimzi custom resources with the validators that @kubernetes-models/strimzi-kafka-operator compiles
// from Strimzi's CRD schemas (scripts/crd_schemas.py runs it; the package is pinned in scripts/tools.py).
// stdin: a JSON list of {"module": <absolute path of a _schemas/*.js file>, "object": <the resource>}
// stdout: a JSON list, one entry per input: a list of "<path>: <problem>" strings (empty when valid).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const items = JSON.parse(readFileSync(0, "utf8"));
const modules = new Map();
const results = [];
for (const { module, object } of items) {
  if (!modules.has(module)) {
    modules.set(module, (await import(pathToFileURL(module).href)).validate);
  }
  const validate = modules.get(module);
  const problems = [];
  if (!validate(object)) {
    for (const error of validate.errors ?? []) {
      const where = error.instancePath ? error.instancePath.slice(1).replaceAll("/", ".") : "(root)";
      problems.push(`${where}: ${error.message ?? error.keyword} ${JSON.stringify(error.params)}`);
    }
  }
  results.push(problems);
}
process.stdout.write(JSON.stringify(results));
