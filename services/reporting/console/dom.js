// Shared by the console's modules: building elements and reading a dialog's own texts.

import { lang } from "./i18n.js";

// An element with attributes and children; strings become text nodes, so data is never parsed
// as markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// A dialog's text lookup: its table in the console's language (Chinese when missing), a dotted
// key for nested entries, {name} filled from vars.
export function sayer(texts) {
  return (key, vars = {}) => {
    const table = texts[lang()] || texts.zh;
    const pick = (root) => key.split(".").reduce((node, part) => node?.[part], root);
    const text = pick(table) ?? pick(texts.zh);
    return String(text).replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
  };
}

// Fills ``container`` with ``children`` in order, but never takes ``kept`` (a form someone may be
// typing into) out of the page: a live refresh that moved it would take the focus from its
// field, and what is typed next would go nowhere. ``kept`` ends up where ``children`` place it.
export function refill(container, kept, ...children) {
  const wanted = children.flat().filter((c) => c !== null && c !== undefined && c !== false && c !== "");
  for (const node of [...container.childNodes]) if (node !== kept) container.removeChild(node);
  const at = kept && kept.parentNode === container ? wanted.indexOf(kept) : -1;
  for (const [i, node] of wanted.entries()) {
    if (node === kept && at >= 0) continue;
    const child = node instanceof Node ? node : document.createTextNode(String(node));
    if (at >= 0 && i < at) container.insertBefore(child, kept);
    else container.append(child);
  }
}
