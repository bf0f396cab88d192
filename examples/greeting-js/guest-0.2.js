// The Greeting guest again, in JavaScript, against contract 0.2.0 (../../wit/reconciler.wit):
// the same ConfigMap per recipient, plus what 0.2 adds.
// - Configuration: `{"punctuation": "?"}` (NAME.yaml `config`, or --guest-config), checked in
//   `configure`; the default is "!".
// - Related objects: every ConfigMap in the Greeting's namespace labelled
//   `examples.wasm-reconciler.io/greeting-signature=true` (a label selector) signs the greetings;
//   changing, adding or removing one re-reconciles the Greetings that read it.
// - Events: a Warning `NoSignature` on the Greeting while no such ConfigMap exists.
// Built by build.sh beside the 0.1 guest.js.

import log from "wasm-reconciler:reconciler/log@0.2.0";

const GROUP = "examples.wasm-reconciler.io";
const VERSION = "v1alpha1";
const SIGNATURE_LABEL = "examples.wasm-reconciler.io/greeting-signature";
const CONFIG_MAP = { group: "", version: "v1", kind: "ConfigMap" };
// A DNS label, as Kubernetes object names built from it must be.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

// A `result` export: return the ok value, throw the error.
function invalidSpec(reason) {
  return { tag: "invalid-spec", val: reason };
}

function punctuation(config) {
  const parsed = JSON.parse(config);
  if (parsed === null) {
    return "!";
  }
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw `config: expected an object such as {"punctuation": "?"}, not ${config}`;
  }
  for (const key of Object.keys(parsed)) {
    if (key !== "punctuation") {
      throw `config.${key}: unknown key; the only key is punctuation`;
    }
  }
  const mark = parsed.punctuation ?? "!";
  if (typeof mark !== "string" || mark.length < 1 || mark.length > 3) {
    throw `config.punctuation: expected 1 to 3 characters, not ${JSON.stringify(mark)}`;
  }
  return mark;
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

function configMap(greeting, spec, recipient, mark, signature) {
  const name = greeting.metadata.name;
  const data = { recipient, message: `${spec.message}, ${recipient}${mark}` };
  if (signature !== "") {
    data.signature = signature;
  }
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
    data,
  };
}

export const guest = {
  describe() {
    return {
      name: "greeting-js",
      version: "0.2.0",
      parent: { group: GROUP, version: VERSION, kind: "Greeting" },
      children: [CONFIG_MAP],
      related: [CONFIG_MAP],
    };
  },

  configure(config) {
    punctuation(config);
  },

  // The same for every Greeting: the signature ConfigMaps of its namespace.
  requirements(_parent, _config) {
    return [
      {
        key: "signatures",
        kind: CONFIG_MAP,
        namespace: undefined,
        selection: { tag: "label-selector", val: `${SIGNATURE_LABEL}=true` },
      },
    ];
  },

  reconcile(observed, config) {
    const greeting = JSON.parse(observed.parent);
    const spec = validate(greeting.spec);
    const mark = punctuation(config);
    const signatures = (observed.related.find((set) => set.key === "signatures")?.objects ?? [])
      .map((text) => JSON.parse(text).data?.signature)
      .filter((signature) => typeof signature === "string");
    const signature = signatures.join(" ");
    const children = spec.recipients.map((r) => configMap(greeting, spec, r, mark, signature));
    const delivered = observed.children
      .map((text) => JSON.parse(text))
      .filter((child) => spec.recipients.includes(child.data?.recipient)).length;
    log.log("debug", `${children.length} greetings, ${delivered} already delivered`);
    const events =
      signatures.length === 0
        ? [
            {
              eventType: "warning",
              reason: "NoSignature",
              message: `no ConfigMap labelled ${SIGNATURE_LABEL}=true in this namespace; the greetings go unsigned`,
              about: undefined,
            },
          ]
        : [];
    return {
      children: children.map((child) => JSON.stringify(child)),
      status: JSON.stringify({
        recipients: spec.recipients.length,
        delivered,
        observedGeneration: greeting.metadata.generation ?? null,
      }),
      requeueAfterMs: undefined,
      events,
    };
  },
};
