// Drives the unmodified Firebase JS SDK (the `firebase` npm package pinned in
// web/package.json) against the emulator, the way the browser sign-in module
// does, and prints what happened as one JSON object for jssdk_test.go to check.
//
// usage: node jssdk.mjs <emulator URL> <absolute path of web/package.json>
//
// Every step records its outcome instead of throwing, so the Go test can
// report each expectation separately.
import { createRequire } from 'node:module';

const [emulatorURL, webPackageJSON] = process.argv.slice(2);
if (!emulatorURL || !webPackageJSON) {
  console.error('usage: node jssdk.mjs <emulator URL> <web/package.json>');
  process.exit(2);
}
// Resolve `firebase` from web/node_modules: one lockfile serves the bundle and this test.
const require = createRequire(webPackageJSON);
const { initializeApp } = require('firebase/app');
const {
  initializeAuth, inMemoryPersistence, connectAuthEmulator,
  createUserWithEmailAndPassword, signInWithEmailAndPassword, signOut,
  sendEmailVerification, applyActionCode, parseActionCodeURL, updateEmail, verifyBeforeUpdateEmail,
  sendPasswordResetEmail, verifyPasswordResetCode, confirmPasswordReset, signInWithCustomToken,
  sendSignInLinkToEmail, isSignInWithEmailLink, signInWithEmailLink,
} = require('firebase/auth');

const app = initializeApp({ apiKey: 'demo-api-key', projectId: 'demo-acme', appId: '1:1234:web:abcd' });
const auth = initializeAuth(app, { persistence: inMemoryPersistence });
connectAuthEmulator(auth, emulatorURL, { disableWarnings: true });

const email = 'jssdk@example.com';
const password = 'correct horse battery';
const out = {};

async function step(name, fn) {
  try {
    out[name] = { ok: true, ...(await fn()) };
  } catch (err) {
    out[name] = { ok: false, code: err?.code ?? null, message: String(err?.message ?? err) };
  }
}

await step('signUp', async () => {
  const cred = await createUserWithEmailAndPassword(auth, email, password);
  return { uid: cred.user.uid, email: cred.user.email, idToken: await cred.user.getIdToken() };
});
await step('signUpAgain', async () => {
  await createUserWithEmailAndPassword(auth, email, password);
  return {};
});
await step('signUpWeak', async () => {
  await createUserWithEmailAndPassword(auth, 'weak@example.com', '123');
  return {};
});
await step('signOutAfterSignUp', async () => {
  await signOut(auth);
  return { currentUser: auth.currentUser?.uid ?? null };
});
await step('signIn', async () => {
  const cred = await signInWithEmailAndPassword(auth, email, password);
  const result = await cred.user.getIdTokenResult();
  return {
    uid: cred.user.uid, email: cred.user.email, isAnonymous: cred.user.isAnonymous,
    providers: cred.user.providerData.map((p) => p.providerId),
    signInProvider: result.signInProvider, idToken: result.token,
  };
});
// The newest link the emulator would have mailed to `to`, as its outbox lists it.
async function lastLink(requestType, to) {
  const res = await fetch(`${emulatorURL}/emulator/v1/projects/demo-acme/oobCodes`);
  const { oobCodes } = await res.json();
  const rec = oobCodes.filter((c) => c.requestType === requestType && c.email === to).pop();
  if (!rec) throw new Error(`no ${requestType} code for ${to} in ${JSON.stringify(oobCodes)}`);
  // parseActionCodeURL is how apps read the link: it needs mode, oobCode and apiKey.
  const parsed = parseActionCodeURL(rec.oobLink);
  if (!parsed) throw new Error(`the SDK cannot parse ${rec.oobLink}`);
  return parsed;
}
await step('sendEmailVerification', async () => {
  await sendEmailVerification(auth.currentUser, { url: 'http://localhost/after-verify' });
  const link = await lastLink('VERIFY_EMAIL', email);
  out.verifyLink = link;
  return { mode: link.operation, continueUrl: link.continueUrl, emailVerified: auth.currentUser.emailVerified };
});
await step('applyActionCode', async () => {
  await applyActionCode(auth, out.verifyLink.code);
  await auth.currentUser.reload();
  const result = await auth.currentUser.getIdTokenResult(true);
  return { emailVerified: auth.currentUser.emailVerified, claim: result.claims.email_verified, idToken: result.token };
});
await step('applyActionCodeAgain', async () => {
  await applyActionCode(auth, out.verifyLink.code);
  return {};
});
delete out.verifyLink;
await step('refresh', async () => {
  const result = await auth.currentUser.getIdTokenResult(true);
  return { uid: auth.currentUser.uid, idToken: result.token, signInProvider: result.signInProvider };
});
await step('signOut', async () => {
  await signOut(auth);
  return { currentUser: auth.currentUser?.uid ?? null };
});
await step('wrongPassword', async () => {
  await signInWithEmailAndPassword(auth, email, 'not the password');
  return {};
});
await step('unknownUser', async () => {
  await signInWithEmailAndPassword(auth, 'nobody@example.com', password);
  return {};
});

await step('updateEmail', async () => {
  await signInWithEmailAndPassword(auth, email, password);
  await updateEmail(auth.currentUser, 'renamed@example.com');
  return {};
});
await step('verifyBeforeUpdateEmail', async () => {
  await verifyBeforeUpdateEmail(auth.currentUser, 'renamed@example.com');
  const link = await lastLink('VERIFY_AND_CHANGE_EMAIL', 'renamed@example.com');
  await applyActionCode(auth, link.code);
  const cred = await signInWithEmailAndPassword(auth, 'renamed@example.com', password);
  return { mode: link.operation, uid: cred.user.uid, email: cred.user.email, emailVerified: cred.user.emailVerified };
});
await step('passwordReset', async () => {
  await signOut(auth);
  await sendPasswordResetEmail(auth, 'renamed@example.com');
  const link = await lastLink('PASSWORD_RESET', 'renamed@example.com');
  const forEmail = await verifyPasswordResetCode(auth, link.code);
  await confirmPasswordReset(auth, link.code, 'a brand new password');
  const cred = await signInWithEmailAndPassword(auth, 'renamed@example.com', 'a brand new password');
  return { mode: link.operation, email: forEmail, uid: cred.user.uid };
});
await step('oldPasswordAfterReset', async () => {
  await signInWithEmailAndPassword(auth, 'renamed@example.com', password);
  return {};
});
await step('customToken', async () => {
  // What the Admin SDK mints in emulator mode: an unsigned JWT (alg none).
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const token = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({
    aud: 'https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit',
    iss: 'firebase-auth-emulator@example.com', sub: 'firebase-auth-emulator@example.com',
    iat: now, exp: now + 3600, uid: 'custom-uid', claims: { plan: 'gold' },
  })}.`;
  const cred = await signInWithCustomToken(auth, token);
  const result = await cred.user.getIdTokenResult(true);
  return { uid: cred.user.uid, signInProvider: result.signInProvider, claim: result.claims.plan, idToken: result.token };
});
await step('emailLink', async () => {
  await signOut(auth);
  await sendSignInLinkToEmail(auth, 'linked@example.com', { url: 'http://localhost/finish', handleCodeInApp: true });
  const res = await fetch(`${emulatorURL}/emulator/v1/projects/demo-acme/oobCodes`);
  const rec = (await res.json()).oobCodes.filter((c) => c.requestType === 'EMAIL_SIGNIN').pop();
  if (!isSignInWithEmailLink(auth, rec.oobLink)) throw new Error(`not an email sign-in link: ${rec.oobLink}`);
  const cred = await signInWithEmailLink(auth, 'linked@example.com', rec.oobLink);
  return { uid: cred.user.uid, email: cred.user.email, emailVerified: cred.user.emailVerified };
});

console.log(JSON.stringify(out));
process.exit(0);
