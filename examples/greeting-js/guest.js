// A reconciler guest in JavaScript: for each recipient of a Greeting, a ConfigMap holding the
// greeting. Built into a WebAssembly component with componentize-qjs (see build.sh); the host
// calls `guest.describe()` once and `guest.reconcile(observed)` per reconcile, exactly as it
// calls the Rust guest. The contract is ../../wit/reconciler.wit.

import log from "wasm-reconciler:reconciler/log@0.1.0";

const GROUP = "examples.wasm-reconciler.io";
const VERSION = "v1alpha1";
// A DNS label, as Kubernetes object names built from it must be.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

// A top-level `result` export: return the ok value, throw the error variant.
function invalidSpec(reason) {
  return { tag: "invalid-spec", val: reason };
}

function validate(spec) {
  if (spec === null || typeof spec !== "object") {
    throw invalidSpec("spec: must be an object");
  }
  if (typeof spec.message !== "string" || spec.message.trim() === "") {
    throw invalidSpec("spec.message: must be a non-empty string");
  }
  if (spec.message.length > 200) {
    throw invalidSpec(`spec.message: at most 200 characters, not ${spec.message.length}`);
  }
  const recipients = spec.recipients ?? [];
  if (!Array.isArray(recipients)) {
    throw invalidSpec("spec.recipients: must be a list");
  }
  const seen = new Set();
  recipients.forEach((recipient, i) => {
    if (typeof recipient !== "string" || recipient.length > 40 || !DNS_LABEL.test(recipient)) {
      throw invalidSpec(
        `spec.recipients[${i}]: ${JSON.stringify(recipient)} is not a lowercase DNS label of at most 40 characters`,
      );
    }
    if (seen.has(recipient)) {
      throw invalidSpec(`spec.recipients[${i}]: ${recipient} is listed twice`);
    }
    seen.add(recipient);
  });
  return { message: spec.message, recipients };
}

function configMap(greeting, spec, recipient) {
  const name = greeting.metadata.name;
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: `${name}-${recipient}`,
      labels: {
        "app.kubernetes.io/name": "greeting",
        "app.kubernetes.io/instance": name,
      },
    },
    data: { recipient, message: `${spec.message}, ${recipient}!` },
  };
}

export const guest = {
  describe() {
    return {
      name: "greeting-js",
      version: "0.1.0",
      parent: { group: GROUP, version: VERSION, kind: "Greeting" },
      children: [{ group: "", version: "v1", kind: "ConfigMap" }],
    };
  },

  reconcile(observed) {
    const greeting = JSON.parse(observed.parent);
    const spec = validate(greeting.spec);
    const children = spec.recipients.map((r) => configMap(greeting, spec, r));
    const delivered = observed.children
      .map((text) => JSON.parse(text))
      .filter((child) => spec.recipients.includes(child.data?.recipient)).length;
    log.log("debug", `${children.length} greetings, ${delivered} already delivered`);
    return {
      children: children.map((child) => JSON.stringify(child)),
      status: JSON.stringify({
        recipients: spec.recipients.length,
        delivered,
        observedGeneration: greeting.metadata.generation ?? null,
      }),
      requeueAfterMs: null,
    };
  },
};
