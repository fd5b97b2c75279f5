// The browser half of sign-in. The server renders every page; this module
// only does what needs the Firebase JS SDK: signing in or creating an account
// with Identity Platform, then handing the user's ID token to the server
// (POST /session), which keeps it in an HttpOnly cookie. onIdTokenChanged
// keeps that cookie fresh as the SDK refreshes the token (hourly), and turns an
// expired cookie into a quiet refresh instead of an error page.
//
// A new account must verify its email address before the server shows it
// the secret: right after sign-up the module asks Identity Platform to send
// the link (sendEmailVerification), and the page the server renders for an
// unverified account ("Check your inbox") lets the user send it again, and
// picks the verification up when they come back to the tab.
//
// Only the modular functions used here are imported, so esbuild can drop the
// rest of firebase/auth from the bundle.
import { initializeApp } from 'firebase/app';
import {
  initializeAuth,
  indexedDBLocalPersistence,
  browserLocalPersistence,
  connectAuthEmulator,
  signInWithEmailAndPassword,
  createUserWithEmailAndPassword,
  signInWithPopup,
  GoogleAuthProvider,
  browserPopupRedirectResolver,
  onIdTokenChanged,
  signOut,
  sendEmailVerification,
  reload,
} from 'firebase/auth';
import './developers.js'; // the developers' page's copy buttons and address

// The server hands over the Firebase web configuration in a JSON script
// element. None of it is secret: the Firebase apiKey only identifies the
// project to Identity Platform (it is public by design, like a client id);
// what protects users is token verification on the server and the gateway.
const config = JSON.parse(document.getElementById('app-config').textContent);
const session = document.body.dataset.session; // "none" | "active" | "stale"

// Messages for the codes a user can cause. Wrong password, unknown user and
// invalid credential share one message, so the form does not reveal which
// email addresses have accounts.
const noMatch = 'That email and password do not match. Check them and try again.';
const messages = {
  'auth/wrong-password': noMatch,
  'auth/invalid-credential': noMatch,
  'auth/invalid-login-credentials': noMatch,
  'auth/user-not-found': noMatch,
  'auth/invalid-email': 'Enter a valid email address, like name@example.com.',
  'auth/missing-password': 'Enter your password.',
  'auth/email-already-in-use':
    'We could not create an account with that email. If you already have one, sign in instead.',
  'auth/weak-password': 'Choose a stronger password: at least 6 characters.',
  'auth/too-many-requests': 'Too many attempts. Wait a moment, then try again.',
  'auth/network-request-failed':
    'We could not reach the sign-in service. Check your connection and try again.',
  'auth/popup-closed-by-user': 'The Google sign-in window was closed before finishing.',
  'auth/operation-not-allowed': 'This way of signing in is not enabled for this site.',
};
const fallbackMessage = 'Something went wrong while signing in. Try again in a moment.';

const app = initializeApp({
  apiKey: config.apiKey,
  authDomain: config.authDomain,
  projectId: config.projectId,
});
// initializeAuth instead of getAuth: getAuth pulls in every persistence; we
// name the ones we use.
const auth = initializeAuth(app, {
  persistence: [indexedDBLocalPersistence, browserLocalPersistence],
});
if (config.emulatorUrl) {
  // The page shows its own "local emulator" badge; the SDK's banner would need
  // inline styles, which the Content-Security-Policy forbids.
  connectAuthEmulator(auth, config.emulatorUrl, { disableWarnings: true });
}

const form = document.getElementById('auth-form');
const errorBox = document.getElementById('auth-error');
const statusBox = document.getElementById('auth-status');
let signingOut = false;
let interactive = false; // the user just pressed a sign-in button: no loop guard
let creating = false; // sign-up in progress: its handler posts the session itself

function showError(text) {
  if (!errorBox) return;
  errorBox.textContent = text;
  errorBox.hidden = !text;
}

// The form is rendered disabled, so that nothing can be submitted before
// this module is ready (a plain submit would send the password nowhere useful).
function setBusy(busy) {
  if (!form) return;
  form.querySelector('fieldset').disabled = busy;
  form.setAttribute('aria-busy', String(busy));
}

function showForm() {
  if (statusBox) statusBox.hidden = true;
  if (form) {
    form.hidden = false;
    setBusy(false);
  }
}

async function postSession(user, forceRefresh) {
  const idToken = await user.getIdToken(forceRefresh);
  const res = await fetch('/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': config.csrfToken },
    body: JSON.stringify({ idToken }),
  });
  if (!res.ok) throw new Error(`POST /session answered ${res.status}`);
}

// Without a live session cookie but with a signed-in SDK user (the cookie
// expired, or the gateway said 401), the page gets one quiet refresh. If it
// comes back without a session within a minute, the user signs in again
// instead of the page reloading in a loop.
function mayQuietlyRefresh() {
  const key = 'quiet-refresh-at';
  const last = Number(sessionStorage.getItem(key) || 0);
  if (Date.now() - last < 60_000) return false;
  sessionStorage.setItem(key, String(Date.now()));
  return true;
}

onIdTokenChanged(auth, async (user) => {
  if (signingOut || creating) return;
  if (!user) {
    if (session !== 'active') showForm();
    return;
  }
  try {
    if (session === 'active') {
      await postSession(user, false); // keep the cookie as fresh as the token
      // Done: a test (or anything else) that replaces the cookie after this
      // knows no late answer of ours will overwrite it.
      document.body.dataset.sessionPosted = 'true';
      return;
    }
    if (!interactive && !mayQuietlyRefresh()) {
      showForm();
      return;
    }
    await postSession(user, session === 'stale');
    window.location.replace('/');
  } catch (err) {
    console.error(err);
    showForm();
    showError(fallbackMessage);
  }
});

if (form) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError('');
    const email = form.elements.email.value.trim();
    const password = form.elements.password.value;
    setBusy(true);
    interactive = true;
    try {
      if (form.dataset.mode === 'create') {
        // The link is sent before the page moves on, or the reload could
        // cancel the request; the server then shows "Check your inbox".
        creating = true;
        const { user } = await createUserWithEmailAndPassword(auth, email, password);
        await sendVerification(user);
        await postSession(user, false);
        window.location.replace('/');
        return;
      }
      await signInWithEmailAndPassword(auth, email, password);
      // onIdTokenChanged takes it from here: session cookie, then reload.
    } catch (err) {
      creating = false;
      setBusy(false);
      showError(messages[err.code] || fallbackMessage);
      form.elements.password.focus();
    }
  });
}

const google = document.getElementById('google-sign-in');
if (google) {
  google.addEventListener('click', async () => {
    showError('');
    interactive = true;
    try {
      await signInWithPopup(auth, new GoogleAuthProvider(), browserPopupRedirectResolver);
    } catch (err) {
      showError(messages[err.code] || fallbackMessage);
    }
  });
}

// sendVerification asks Identity Platform to email the verification link.
// A failure here is not fatal: the "Check your inbox" page offers to send it
// again.
async function sendVerification(user) {
  try {
    await sendEmailVerification(user);
    return true;
  } catch (err) {
    console.warn('sending the verification email failed', err.code || err);
    return false;
  }
}

// The "Check your inbox" card, shown by the server while the account's email
// is not verified.
const verifyCard = document.getElementById('verify-email');
if (verifyCard) {
  const verifyStatus = document.getElementById('verify-status');
  const check = document.getElementById('verify-check');
  const resend = document.getElementById('verify-resend');
  const say = (text) => {
    verifyStatus.textContent = text;
    verifyStatus.hidden = !text;
  };
  let checking = false;

  // isVerified reloads the user from Identity Platform; once verified, the
  // ID token is refreshed (its email_verified claim comes from the token),
  // handed to the server, and the page reloaded to show the secret.
  async function isVerified() {
    const user = auth.currentUser;
    if (!user || checking) return false;
    checking = true;
    try {
      await reload(user);
      if (!user.emailVerified) return false;
      await postSession(user, true);
      window.location.replace('/');
      return true;
    } finally {
      checking = false;
    }
  }

  // The SDK restores the signed-in user asynchronously; the buttons wait for it.
  auth.authStateReady().then(() => {
    check.disabled = !auth.currentUser;
    resend.disabled = !auth.currentUser;
  });

  check.addEventListener('click', async () => {
    say('');
    check.disabled = true;
    try {
      if (!(await isVerified())) {
        say('Your email address is not verified yet. Open the link we sent you, then try again.');
      }
    } catch (err) {
      console.error(err);
      say(messages[err.code] || fallbackMessage);
    } finally {
      check.disabled = false;
    }
  });

  resend.addEventListener('click', async () => {
    say('');
    resend.disabled = true;
    try {
      await sendEmailVerification(auth.currentUser);
      say(`We sent a new link to ${auth.currentUser.email}. It may take a minute to arrive.`);
    } catch (err) {
      say(messages[err.code] || 'We could not send the email. Try again in a moment.');
    } finally {
      resend.disabled = false;
    }
  });

  // Coming back to the tab after clicking the link in the email.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') isVerified().catch(() => {});
  });
}

// Sign-out works without JavaScript (the server clears its cookie); with it,
// the SDK forgets the user too, or it would sign them straight back in.
const signOutForm = document.getElementById('sign-out-form');
if (signOutForm) {
  signOutForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    signingOut = true;
    try {
      await signOut(auth);
    } finally {
      signOutForm.submit();
    }
  });
}
