/**
 * Profiles and password change (SPEC.md §5.2.4, §5.2.5) as sections of the
 * profile page (extensions.profileSections): display name, bio and email
 * (the email is only ever shown to its owner), the avatar (avatar.tsx),
 * and a password change that ends the user's other sessions.
 */

import { useEffect, useState } from "preact/hooks";

import { AvatarForm } from "./avatar";
import { extensions } from "./extensions";
import { app } from "./model";
import { Feedback, useAction, useApp } from "./ui/common";

function ProfileForm() {
  const a = useApp();
  const action = useAction();
  const [form, setForm] = useState<{ displayName: string; bio: string; email: string } | undefined>(undefined);
  useEffect(() => {
    if (a.profile === undefined) void action.run(() => app.loadProfile());
  }, []);
  const p = a.profile;
  if (p === undefined) return <Feedback error={action.error} done="" />;
  const f = form ?? { displayName: p.displayName ?? "", bio: p.bio, email: p.email ?? "" };
  const set = (k: keyof typeof f) => (e: { currentTarget: { value: string } }) => setForm({ ...f, [k]: e.currentTarget.value });
  return (
    <form
      class="stack"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        void action.run(async () => {
          await app.updateProfile({
            ...(f.displayName.trim() !== "" ? { displayName: f.displayName } : {}),
            bio: f.bio,
            ...(f.email.trim() !== "" ? { email: f.email } : {}),
          });
          setForm(undefined);
          return "Profile saved.";
        });
      }}
    >
      <label>
        Display name
        <input value={f.displayName} maxLength={64} placeholder={p.username} onInput={set("displayName")} />
      </label>
      <label>
        Bio
        <textarea rows={3} value={f.bio} maxLength={500} onInput={set("bio")} />
      </label>
      <label>
        Email (only you see it)
        <input type="email" value={f.email} autoComplete="email" onInput={set("email")} />
      </label>
      <div>
        <button type="submit" class="primary" disabled={action.busy}>
          Save profile
        </button>
      </div>
      <Feedback error={action.error} done={action.done} />
    </form>
  );
}

function PasswordForm() {
  const action = useAction();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  return (
    <form
      class="stack"
      onSubmit={(e) => {
        e.preventDefault();
        void action.run(async () => {
          if (next !== again) throw new Error("The new passwords do not match.");
          await app.changePassword(current, next);
          setCurrent("");
          setNext("");
          setAgain("");
          return "Password changed. Your other sessions were logged out.";
        });
      }}
    >
      <label>
        Current password
        <input type="password" autoComplete="current-password" required value={current} onInput={(e) => setCurrent(e.currentTarget.value)} />
      </label>
      <label>
        New password
        <input type="password" autoComplete="new-password" required minLength={8} value={next} onInput={(e) => setNext(e.currentTarget.value)} />
      </label>
      <label>
        Repeat the new password
        <input type="password" autoComplete="new-password" required value={again} onInput={(e) => setAgain(e.currentTarget.value)} />
      </label>
      <div>
        <button type="submit" disabled={action.busy}>
          Change password
        </button>
      </div>
      <Feedback error={action.error} done={action.done} />
    </form>
  );
}

extensions.profileSections.push(
  { id: "profile", title: "Profile details", render: () => <ProfileForm /> },
  { id: "avatar", title: "Avatar", render: () => <AvatarForm /> },
  { id: "password", title: "Password", render: () => <PasswordForm /> },
);
