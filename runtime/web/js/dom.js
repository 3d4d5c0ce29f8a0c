// DOM helpers. Everything a user typed reaches the page through text nodes (textContent), never through HTML
// parsing: this module is the only place that creates elements, and it has no way to set markup.

/** The element with `data-testid="<id>"` (the stable handles the markup and the tests share). */
export function byTestId(id, root = document) {
  const found = root.querySelector(`[data-testid="${id}"]`);
  if (!found) throw new Error(`missing element ${id}`);
  return found;
}

/**
 * A new element. `props`: `class`, `text` (set as textContent), `dataset` (data-* attributes), `attrs` (plain
 * attributes; event handler attributes are refused), `on` (event listeners).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  if (props.class) node.className = props.class;
  if (props.text !== undefined) node.textContent = String(props.text);
  for (const [key, value] of Object.entries(props.dataset ?? {})) node.dataset[key] = String(value);
  for (const [key, value] of Object.entries(props.attrs ?? {})) {
    if (/^on/i.test(key)) throw new Error(`refusing event handler attribute ${key}`);
    if (value !== undefined && value !== null && value !== false) node.setAttribute(key, String(value));
  }
  for (const [event, handler] of Object.entries(props.on ?? {})) node.addEventListener(event, handler);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** `HH:MM` in the reader's time zone, or the empty string for an unreadable timestamp. */
export function shortTime(timestamp) {
  const at = new Date(timestamp);
  if (Number.isNaN(at.getTime())) return '';
  return at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
