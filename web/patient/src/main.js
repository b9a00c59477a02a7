// The patient's page: sign in with a wallet, see studies, access and history; give and stop access.
import { isAddress, getAddress } from "viem";
import { ApiError, UnreachableError, call, download, setToken, signedIn } from "./api.js";
import { account, day, h, identifiedWords, purposes, replace, show, when } from "./ui.js";
import * as wallet from "./wallet.js";

const config = JSON.parse(document.getElementById("config").textContent);
const ALL_STUDIES = `0x${"00".repeat(32)}`;
const POLL_MS = 1000;
const SECTIONS = ["studies", "access", "give", "guardian", "history", "changes"];
const state = { address: null, chainOk: false, studies: [], history: null, busy: false };

// --- notices: one live region says what is happening, in words --------------------------------

function notify(kind, title, ...body) {
  const box = replace(
    "notice",
    h("div", { class: `notice ${kind}` }, h("p", { class: "notice-title" }, title), ...body.map((b) => (typeof b === "string" ? h("p", {}, b) : b))),
  );
  box.scrollIntoView({ block: "nearest" });
}

function txWords(tx) {
  if (tx.link) return h("p", {}, "Transaction: ", h("a", { href: tx.link, target: "_blank", rel: "noopener" }, tx.txHash));
  return h("p", {}, "Transaction (on a local test chain, there is no public explorer): ", h("code", { class: "address" }, tx.txHash));
}

/** Say what went wrong, in words; a session that ended leads back to signing in. */
function explain(error, doing) {
  if (error instanceof wallet.WalletError) {
    if (error.code === wallet.USER_REJECTED) {
      notify("error", "You declined in your wallet", `${doing}: nothing was signed and nothing was sent.`);
    } else {
      notify("error", "Your wallet could not do this", `${doing}: ${error.message}. Nothing was changed.`);
    }
  } else if (error instanceof UnreachableError) {
    notify("error", "The site cannot be reached", `${doing}: the site's gateway does not answer. Check your connection and try again later. Nothing was changed.`);
  } else if (error instanceof ApiError && error.status === 401) {
    sessionEnded();
  } else if (error instanceof ApiError) {
    notify("error", error.title, `${doing}: ${error.detail}.`, error.status === 429 ? "" : "Nothing was sent.");
  } else {
    notify("error", "Something went wrong", `${doing}: ${error.message || error}. Nothing was changed.`);
  }
}

function sessionEnded() {
  setToken(null);
  SECTIONS.forEach((id) => show(id, false));
  show("start", true);
  notify("error", "Your session has ended", "For your safety a sign-in lasts at most 15 minutes. Sign in again to continue; nothing was changed.");
  renderStart();
}

async function busy(doing, work) {
  if (state.busy) return;
  state.busy = true;
  document.body.setAttribute("aria-busy", "true");
  try {
    await work();
  } catch (error) {
    explain(error, doing);
  } finally {
    state.busy = false;
    document.body.removeAttribute("aria-busy");
  }
}

// --- connect, chain, sign in ------------------------------------------------------------------

function renderStart() {
  if (!wallet.hasWallet()) {
    replace("start-body", h("p", {}, "No wallet was found in this browser. Install a wallet extension (for example MetaMask), then reload this page."));
    return;
  }
  if (!state.address) {
    replace(
      "start-body",
      h("p", {}, "Your wallet holds the key that proves who you are. Connecting shares only your account address with this page."),
      h("button", { type: "button", id: "connect", onclick: () => busy("Connecting your wallet", connectWallet) }, "Connect your wallet"),
    );
    return;
  }
  if (!state.chainOk) {
    replace(
      "start-body",
      h("p", {}, "Connected account: ", h("code", { class: "address" }, state.address)),
      h("p", {}, `To continue, your wallet must be on ${config.networkName} (network ${config.chainId}).`),
    );
    return;
  }
  replace(
    "start-body",
    h("p", {}, "Connected account: ", h("code", { class: "address" }, state.address)),
    h("p", {}, "Signing in asks your wallet to sign a short message. It is free and sends nothing to the chain."),
    h("button", { type: "button", id: "sign-in", onclick: () => busy("Signing in", signInFlow) }, "Sign in"),
  );
}

async function connectWallet() {
  state.address = await wallet.connect();
  await onRightChain();
  renderStart();
}

/** True if the wallet is on this site's chain; else offer to switch (or say it must). */
async function onRightChain() {
  const current = await wallet.chainId();
  state.chainOk = current === config.chainId;
  if (state.chainOk) return true;
  notify(
    "error",
    "Your wallet is on another network",
    `Your wallet is connected to network ${current}. This site records consent on ${config.networkName} (network ${config.chainId}). Nothing can be signed until your wallet is on that network.`,
    h("button", { type: "button", id: "switch-chain", onclick: () => busy("Switching network", switchChain) }, `Switch my wallet to ${config.networkName}`),
  );
  return false;
}

async function switchChain() {
  try {
    await wallet.switchChain(config.chainId);
  } catch (error) {
    if (error.code === wallet.USER_REJECTED) {
      notify("error", "The network was not switched", `You declined the switch. Please switch your wallet to ${config.networkName} (network ${config.chainId}) yourself, then continue.`);
    } else {
      notify("error", "Your wallet cannot switch by itself", `Open your wallet and choose the network ${config.networkName} (network ${config.chainId}); if it is not listed, add it in the wallet's network settings. Then continue.`);
    }
    return;
  }
  if (await onRightChain()) {
    notify("success", "Your wallet is now on the right network", `${config.networkName} (network ${config.chainId}).`);
    renderStart();
  }
}

async function signInFlow() {
  if (!(await onRightChain())) return;
  const { nonce } = await call("POST", "/auth/nonce");
  const { message, signature } = await wallet.signIn(state.address, config.chainId, nonce);
  const answer = await call("POST", "/auth/login", { message, signature });
  setToken(answer.access_token);
  show("start", false);
  replace("notice");
  await refresh();
  document.getElementById("studies-h").focus();
}

// --- what the patient sees --------------------------------------------------------------------

async function refresh() {
  const [studies, history] = await Promise.all([call("GET", "/patient/api/studies"), call("GET", "/patient/api/history")]);
  state.studies = studies.studies;
  state.history = history;
  replace("who", "Signed in as ", h("code", { class: "address" }, studies.patient));
  renderStudies();
  renderAccess();
  renderGive();
  renderGuardian();
  renderHistory();
  SECTIONS.forEach((id) => show(id, true));
}

function renderStudies() {
  if (!state.studies.length) {
    replace("studies-body", h("p", {}, "This site has no studies registered in your name."));
    return;
  }
  replace(
    "studies-body",
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, "Your studies at this site"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Date"), h("th", { scope: "col" }, "What"), h("th", { scope: "col" }, "Kind of imaging"), h("th", { scope: "col" }, "Size"))),
      h(
        "tbody",
        {},
        state.studies.map((s) =>
          h("tr", {}, h("td", {}, s.date || "unknown"), h("td", {}, s.description), h("td", {}, modalityWords(s.modalities)), h("td", {}, `${s.instances} image${s.instances === 1 ? "" : "s"}`)),
        ),
      ),
    ),
    h("p", { class: "hint" }, "These details come from the site's own records and are shown only to you. The chain holds none of them, only an unreadable reference."),
  );
}

const MODALITIES = { CT: "CT scan", MR: "MRI scan", CR: "X-ray", DX: "X-ray", US: "Ultrasound", MG: "Mammogram", PT: "PET scan", NM: "Nuclear medicine", RTDOSE: "Radiotherapy dose", XA: "Angiography" };

function modalityWords(list) {
  return list.map((m) => `${MODALITIES[m] || "Imaging"} (${m})`).join(", ") || "unknown";
}

function renderAccess() {
  const grants = state.history.grants;
  if (!grants.length) {
    replace("access-body", h("p", {}, "Nobody has access to your images through your consent."));
    return;
  }
  replace(
    "access-body",
    h(
      "ul",
      { class: "cards" },
      grants.map((g, i) =>
        h(
          "li",
          { class: "card", id: `grant-${i}` },
          h("p", { class: "card-title" }, account(g.grantee)),
          h("dl", {}, 
            h("dt", {}, "May see"), h("dd", {}, g.scope.words),
            h("dt", {}, "For"), h("dd", {}, purposes(g.purposes)),
            h("dt", {}, "As"), h("dd", {}, identifiedWords(g.identified)),
            h("dt", {}, "From"), h("dd", {}, g.notBefore ? day(g.notBefore) : "when you gave it"),
            h("dt", {}, "Until"), h("dd", {}, g.expiresAt ? day(g.expiresAt) : "no end date"),
            h("dt", {}, "Status"), h("dd", {}, g.status),
          ),
          h("div", { id: `grant-${i}-actions` }, h("button", { type: "button", class: "secondary", "aria-describedby": `grant-${i}`, onclick: () => confirmRevoke(g, i) }, "Stop this access")),
        ),
      ),
    ),
  );
}

function confirmRevoke(grant, i) {
  const who = grant.grantee.label || grant.grantee.address;
  replace(
    `grant-${i}-actions`,
    h("p", { class: "confirm", role: "alert" }, `Stop access for ${who} to ${grant.scope.words}? From the moment the chain confirms it, they can no longer open these images. Your wallet will ask you to sign; it is free.`),
    h("button", { type: "button", id: `revoke-${i}`, onclick: () => busy("Stopping access", () => revoke(grant, "relay")) }, "Yes, stop this access"),
    h("button", { type: "button", class: "secondary", onclick: () => renderAccess() }, "No, keep it"),
    h("p", { class: "hint" }, "Or your wallet can send the change itself, paying a small fee in ETH:"),
    h("button", { type: "button", class: "secondary", onclick: () => busy("Stopping access", () => revoke(grant, "wallet")) }, "Stop it from my wallet (needs ETH)"),
  );
  document.getElementById(`revoke-${i}`).focus();
}

async function revoke(grant, via) {
  if (!(await onRightChain())) return;
  const body = { kind: "revoke", grantee: grant.grantee.address, scope: grant.scope.all ? null : grant.scope.key };
  const who = grant.grantee.label || grant.grantee.address;
  const doing = `Stopping access for ${who} to ${grant.scope.words}`;
  if (via === "wallet") await walletSends(doing, "revoke", [body.grantee, body.scope || ALL_STUDIES]);
  else await relaySigned(body, doing);
}

// --- give access ------------------------------------------------------------------------------

const PRESETS = [["1 week", 7], ["1 month", 30], ["3 months", 91], ["1 year", 365]];

function isoDate(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function renderGive() {
  const labelled = config.labels.map((l) => h("option", { value: l.address }, l.label));
  const tomorrow = new Date(Date.now() + 86400000);
  replace(
    "give-body",
    h(
      "form",
      { id: "give-form", novalidate: true, onsubmit: (e) => { e.preventDefault(); review(); } },
      h("div", { class: "field" },
        h("label", { for: "grantee" }, "Who should get access? (their account address)"),
        h("p", { class: "hint", id: "grantee-hint" }, "An account address starts with 0x and has 40 more letters and digits. Ask the clinic or research team for theirs."),
        h("input", { id: "grantee", name: "grantee", type: "text", list: "known", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "grantee-hint grantee-error" }),
        h("datalist", { id: "known" }, labelled),
        h("p", { class: "field-error", id: "grantee-error" }),
      ),
      h("fieldset", {},
        h("legend", {}, "Which of your studies?"),
        radio("scope", "all", "All my studies at this site", true),
        state.studies.map((s) => radio("scope", s.key, `Only: ${s.description} (${s.date || "no date"})`, false)),
      ),
      h("fieldset", { "aria-describedby": "purposes-error" },
        h("legend", {}, "For what purpose? (choose at least one)"),
        config.purposes.map((p) =>
          h("div", { class: "choice" },
            h("input", { type: "checkbox", id: `purpose-${p.code}`, name: "purpose", value: p.code }),
            h("label", { for: `purpose-${p.code}` }, h("strong", {}, p.name), ` (${p.code}): ${p.description}`),
          ),
        ),
        h("p", { class: "field-error", id: "purposes-error" }),
      ),
      h("fieldset", {},
        h("legend", {}, "What may they see?"),
        radio("identified", "no", "De-identified copies: your name, birth date and other details are removed (recommended)", true),
        radio("identified", "yes", "Identified images: with your name and details, as your own doctors see them", false),
      ),
      h("div", { class: "field" },
        h("label", { for: "until" }, "Until when? (required)"),
        h("p", { class: "hint", id: "until-hint" }, "Access ends at the end of this day. You can stop it earlier at any time."),
        h("div", { class: "presets", role: "group", "aria-label": "Quick choices for the end date" },
          PRESETS.map(([label, days]) => h("button", { type: "button", class: "secondary", onclick: () => setUntil(days) }, label)),
        ),
        h("input", { id: "until", name: "until", type: "date", min: isoDate(tomorrow), required: true, "aria-describedby": "until-hint until-error" }),
        h("p", { class: "field-error", id: "until-error" }),
      ),
      h("fieldset", {},
        h("legend", {}, "How should it be sent?"),
        radio("via", "relay", "The site sends it for me (free: I only sign)", true),
        radio("via", "wallet", "My wallet sends it itself (needs a little ETH for the fee)", false),
      ),
      h("button", { type: "submit", id: "review-button" }, "Review"),
    ),
  );
  replace("review");
}

function radio(name, value, text, checked) {
  const id = `${name}-${value}`;
  return h("div", { class: "choice" }, h("input", { type: "radio", id, name, value, checked }), h("label", { for: id }, text));
}

function setUntil(days) {
  document.getElementById("until").value = isoDate(new Date(Date.now() + days * 86400000));
}

function fieldError(id, text) {
  document.getElementById(`${id}-error`).textContent = text || "";
  const input = document.getElementById(id);
  if (input) input.setAttribute("aria-invalid", text ? "true" : "false");
  return !text;
}

/** Check the form, then state in words what the grant allows before the wallet opens. */
function review() {
  const form = document.getElementById("give-form");
  const data = new FormData(form);
  const grantee = String(data.get("grantee") || "").trim();
  const chosen = data.getAll("purpose").map(String);
  const until = String(data.get("until") || "");
  const end = until ? Math.floor(new Date(`${until}T23:59:59`).getTime() / 1000) : 0;
  const ok = [
    fieldError("grantee", !isAddress(grantee, { strict: false }) ? "This is not an account address." : grantee.toLowerCase() === state.address.toLowerCase() ? "This is your own account: you always see your own images." : ""),
    fieldError("purposes", chosen.length ? "" : "Choose at least one purpose."),
    fieldError("until", !end ? "Choose an end date." : end * 1000 <= Date.now() ? "The end date must be in the future." : ""),
  ].every(Boolean);
  if (!ok) {
    notify("error", "Please check the form", "Some answers need a change; each is explained below its question.");
    form.querySelector("[aria-invalid=true]")?.focus();
    return;
  }
  const scope = String(data.get("scope"));
  const identified = data.get("identified") === "yes";
  const via = String(data.get("via"));
  const label = config.labels.find((l) => l.address.toLowerCase() === grantee.toLowerCase());
  const study = state.studies.find((s) => s.key === scope);
  const what = study ? `your study “${study.description}” (${study.date || "no date"})` : "all your studies at this site, including ones added later";
  const why = config.purposes.filter((p) => chosen.includes(p.code)).map((p) => `${p.name.toLowerCase()} (${p.code}): ${p.description}`);
  const request = { kind: "grant", grantee: getAddress(grantee), scope: study ? scope : null, purposes: chosen, identified, expiresAt: end };
  replace(
    "review",
    h("div", { class: "review", role: "region", "aria-labelledby": "review-h", tabindex: "-1", id: "review-box" },
      h("h3", { id: "review-h" }, "Please check before you sign"),
      h("p", {}, "You allow ", label ? h("strong", {}, label.label, " ") : null, h("code", { class: "address" }, getAddress(grantee))),
      h("ul", {},
        h("li", {}, `to see ${identified ? "your images with your name and details (identified)" : "copies of your images with your name and details removed (de-identified)"},`),
        h("li", {}, `of ${what},`),
        h("li", {}, `only for ${why.join("; and for ")},`),
        h("li", {}, `from now until the end of ${day(end)}.`),
      ),
      h("p", {}, "They cannot see anything else. You can stop this access at any time on this page. Every time they open your images, it is recorded and shown to you here."),
      h("p", {}, via === "relay"
        ? "Next, your wallet asks you to sign this consent. Signing is free: the site sends it to the chain for you."
        : "Next, your wallet sends this consent to the chain itself and asks you to pay a small fee in ETH."),
      h("button", { type: "button", id: "sign-grant", onclick: () => busy("Giving access", () => giveAccess(request, via, label ? label.label : grantee)) }, via === "relay" ? "Open my wallet to sign" : "Open my wallet to send it"),
      h("button", { type: "button", class: "secondary", onclick: () => { replace("review"); document.getElementById("grantee").focus(); } }, "Change something"),
    ),
  );
  document.getElementById("review-box").focus();
}

async function giveAccess(request, via, who) {
  if (!(await onRightChain())) return;
  const doing = `Giving ${who} access`;
  if (via === "wallet") {
    const mask = config.purposes.reduce((m, p) => (request.purposes.includes(p.code) ? m | (1 << p.bit) : m), 0);
    await walletSends(doing, "grant", [request.grantee, request.scope || ALL_STUDIES, mask, request.identified, 0, request.expiresAt]);
  } else {
    await relaySigned(request, doing);
  }
  replace("review");
}

/** The wallet sends a ConsentRegistry call itself (the patient pays the fee); follow it. */
async function walletSends(doing, functionName, args) {
  notify("pending", "Waiting for your wallet", `${doing}: please check the transaction in your wallet and confirm it. Your wallet pays a small fee in ETH.`);
  const hash = await wallet.sendCall(state.address, config.registry, functionName, args);
  await track(hash, doing);
}

/** The gateway builds the typed data, the wallet signs it, the gateway sends it. */
async function relaySigned(body, doing) {
  const { kind, typedData } = await call("POST", "/patient/api/typed-data", body);
  notify("pending", "Waiting for your wallet", `${doing}: please check the request in your wallet and sign it.`);
  const signature = await wallet.signTypedData(state.address, typedData);
  const sent = await call("POST", "/patient/api/relay", { kind, typedData, signature });
  await track(sent.txHash, doing);
}

/** Follow a transaction until the chain confirms or refuses it; claim nothing before. */
async function track(txHash, doing) {
  const tx = { txHash, link: null };
  for (;;) {
    let status;
    try {
      status = await call("GET", `/patient/api/tx/${txHash}`);
    } catch (error) {
      if (error instanceof UnreachableError) {
        notify("error", "The site cannot be reached", `${doing}: it was sent, but the site does not answer, so the page cannot tell whether the chain confirmed it. Reload later to see.`, txWords(tx));
        return;
      }
      throw error;
    }
    tx.link = status.link;
    if (status.phase === "mined") {
      notify("success", "Confirmed on the chain", `${doing}: done (${status.effect}), in block ${status.block}.`, txWords(status));
      await refresh();
      return;
    }
    if (status.phase === "failed") {
      notify("error", "The chain refused it", `${doing}: ${status.reason}. Nothing was changed.`, txWords(status));
      return;
    }
    notify("pending", "Waiting for the chain to confirm", `${doing}: sent. Nothing has changed until the chain confirms it, usually within a minute.`, txWords(status));
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

// --- guardian ---------------------------------------------------------------------------------

function renderGuardian() {
  const current = state.history.delegates;
  replace(
    "guardian-body",
    h("p", {}, "A guardian (for example a parent or carer) can give and stop access for you. Appointing or removing one cannot be done with a free signature: your wallet sends the transaction itself and pays a small fee in ETH."),
    current.length
      ? h("ul", { class: "cards" }, current.map((d) =>
          h("li", { class: "card" }, account(d.delegate), h("p", {}, `Guardian until ${d.expiresAt ? day(d.expiresAt) : "removed"}.`),
            h("button", { type: "button", class: "secondary", onclick: () => busy("Removing your guardian", () => setGuardian(d.delegate.address, 0)) }, "Remove this guardian"))))
      : h("p", {}, "You have no guardian."),
    h("form", { id: "guardian-form", novalidate: true, onsubmit: (e) => { e.preventDefault(); appoint(); } },
      h("div", { class: "field" }, h("label", { for: "guardian-address" }, "Guardian's account address"), h("input", { id: "guardian-address", type: "text", autocomplete: "off", spellcheck: "false", "aria-describedby": "guardian-address-error" }), h("p", { class: "field-error", id: "guardian-address-error" })),
      h("div", { class: "field" }, h("label", { for: "guardian-until" }, "Guardian until (required)"), h("input", { id: "guardian-until", type: "date", "aria-describedby": "guardian-until-error" }), h("p", { class: "field-error", id: "guardian-until-error" })),
      h("button", { type: "submit" }, "Appoint from my wallet (needs ETH)"),
    ),
  );
}

function appoint() {
  const address = document.getElementById("guardian-address").value.trim();
  const until = document.getElementById("guardian-until").value;
  const end = until ? Math.floor(new Date(`${until}T23:59:59`).getTime() / 1000) : 0;
  const ok = [
    fieldError("guardian-address", isAddress(address, { strict: false }) ? "" : "This is not an account address."),
    fieldError("guardian-until", end * 1000 > Date.now() ? "" : "Choose a date in the future."),
  ].every(Boolean);
  if (ok) busy("Appointing your guardian", () => setGuardian(getAddress(address), end));
}

async function setGuardian(address, end) {
  if (!(await onRightChain())) return;
  await walletSends(end ? "Appointing your guardian" : "Removing your guardian", "setDelegate", [address, ALL_STUDIES, end]);
}

// --- history ----------------------------------------------------------------------------------

/** Where the history was read, and how far behind the chain it is, in words. */
function sourceWords({ source, behind, now }) {
  if (source !== "index") return `Read straight from the chain just now: it is complete up to ${when(now)}.`;
  if (!behind) return `Read from the site's audit index (its copy of the chain's records), which is up to date with the chain: complete up to ${when(now)}.`;
  const blocks = `${behind} block${behind === 1 ? "" : "s"}`;
  return `Read from the site's audit index (its copy of the chain's records), which is ${blocks} behind the chain. The chain adds a block every few seconds; anything recorded after ${when(now)} may not show yet. Reload in a minute to see it.`;
}

function renderHistory() {
  const { accesses, consents } = state.history;
  replace(
    "history-body",
    h("p", { class: "hint" }, "Every time someone asked for your images through this site, it was recorded on the chain."),
    h("p", { class: "hint", id: "history-source" }, sourceWords(state.history)),
    h("p", { class: "downloads" }, "Keep a copy of your record: ",
      reportLink("/patient/api/report.html", "text/html", "imaging-audit-report.html", "as a page to read (HTML)"), " or ",
      reportLink("/patient/api/report.fhir.json", "application/fhir+json", "imaging-audit-report.fhir.json", "for health record apps (FHIR)"), "."),
    accesses.length
      ? h("table", {},
          h("caption", { class: "visually-hidden" }, "Who looked at your images"),
          h("thead", {}, h("tr", {}, ["When", "Who", "Which study", "Why", "What happened"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, accesses.map((a) => h("tr", { class: a.breakGlass ? "break-glass" : a.outcome === "refused" ? "refused" : "" },
            h("td", {}, when(a.time)),
            h("td", {}, account(a.who)),
            h("td", {}, a.scope.words),
            h("td", {}, `${a.purpose.name} (${a.purpose.code})`),
            h("td", {}, a.breakGlass ? h("strong", { class: "flag" }, "⚠ Emergency access") : h("strong", {}, a.outcome), a.batched ? h("span", { class: "tag" }, " recorded in a batch") : null, h("p", { class: "explain" }, a.explanation)),
          ))))
      : h("p", {}, "Nobody has asked for your images yet."),
  );
  replace(
    "changes-body",
    consents.length
      ? h("table", {},
          h("caption", { class: "visually-hidden" }, "Changes to your consent"),
          h("thead", {}, h("tr", {}, ["When", "What", "Who", "Which studies", "For", "Done by"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, consents.map((c) => h("tr", {},
            h("td", {}, when(c.time)), h("td", {}, c.what), h("td", {}, account(c.who)), h("td", {}, c.scope.words),
            h("td", {}, c.purposes.length ? `${purposes(c.purposes)}; ${identifiedWords(c.identified)}` : "—"), h("td", {}, c.by),
          ))))
      : h("p", {}, "You have not changed your consent yet."),
  );
}

/** A link to the patient's own report: fetched with their sign-in, then saved by the browser. */
function reportLink(path, accept, filename, text) {
  return h("a", { href: path, download: filename, onclick: (event) => { event.preventDefault(); busy("Downloading your record", () => save(path, accept, filename)); } }, text);
}

async function save(path, accept, filename) {
  const url = URL.createObjectURL(await download(path, accept));
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// --- start ------------------------------------------------------------------------------------

replace("network", `Consent is recorded on ${config.networkName} (network ${config.chainId}).`);
wallet.onChange(async () => {
  if (signedIn() || !state.address) return;
  if (await onRightChain().catch(() => false)) replace("notice");
  renderStart();
});
renderStart();
