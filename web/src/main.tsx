/** Entry point: starts the app's connection and renders the shell. */

import { render } from "preact";

import "./styles.css";
import { app } from "./model";
import "./rich";
import "./direct";
import "./profile";
import "./attachments";
import { Shell } from "./ui/Shell";

app.start();
const root = document.getElementById("app");
if (root !== null) {
  root.textContent = "";
  render(<Shell />, root);
}

// Keeps the client's files so that the "server unreachable" page can be
// shown when confabd is down (service workers need a secure context:
// https, or http on localhost / 127.0.0.1).
if (import.meta.env.PROD && "serviceWorker" in navigator && window.isSecureContext) {
  void navigator.serviceWorker.register("/sw.js").catch(() => undefined);
}
