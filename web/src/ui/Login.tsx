/** Log in or register; the server unreachable page. */

import { useState } from "preact/hooks";

import { app } from "../model";
import { Feedback, useAction, useApp } from "./common";

export function Login() {
  const a = useApp();
  const [mode, setMode] = useState<"login" | "register">("login");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const action = useAction();
  const register = mode === "register";
  const submit = (e: Event) => {
    e.preventDefault();
    void action.run(() => app.login(username.trim(), password, register));
  };
  return (
    <main class="center-page" id="main">
      <form class="card login" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">{register ? "Create an account" : "Log in to Confab"}</h1>
        {a.loginNotice !== "" ? (
          <p class="notice" role="status">
            {a.loginNotice}
          </p>
        ) : null}
        <div class="tabs" role="tablist" aria-label="Log in or register">
          <button
            type="button"
            role="tab"
            aria-selected={!register}
            class={!register ? "active" : ""}
            onClick={() => {
              setMode("login");
              action.clear();
            }}
          >
            Log in
          </button>
          <button
            type="button"
            role="tab"
            aria-selected={register}
            class={register ? "active" : ""}
            onClick={() => {
              setMode("register");
              action.clear();
            }}
          >
            Register
          </button>
        </div>
        <label>
          Username
          <input name="username" autoComplete="username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete={register ? "new-password" : "current-password"}
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {register ? <p class="hint">Usernames: 3–32 letters, digits, “_” or “-”. Passwords: at least 8 characters.</p> : null}
        <Feedback error={action.error} done="" />
        <button type="submit" class="primary" disabled={action.busy}>
          {action.busy ? "Please wait…" : register ? "Create account" : "Log in"}
        </button>
      </form>
    </main>
  );
}
