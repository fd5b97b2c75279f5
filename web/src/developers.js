// The developers' page's behaviour; every part of it is optional, so the
// page works without JavaScript.
//
// Copy buttons: a button with data-copy="<id>" copies that element's text.
// Buttons are rendered hidden and shown here, so a page without JavaScript
// offers only the text, which one click selects (CSS user-select: all).
// Where the clipboard is refused (an insecure origin, a denied permission),
// the text is selected for the user to copy with the keyboard.
function selectText(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}

for (const button of document.querySelectorAll('button[data-copy]')) {
  const source = document.getElementById(button.dataset.copy);
  if (!source) continue;
  const status = document.getElementById(`${button.dataset.copy.replace(/-value$/, '')}-copied`);
  const say = (text) => {
    if (status) status.textContent = text;
  };
  button.hidden = false;
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(source.textContent.trim());
      button.textContent = 'Copied';
      say('Copied to the clipboard.');
    } catch {
      selectText(source);
      say('Selected: press Ctrl+C (⌘C on a Mac) to copy.');
    }
  });
}

// The answer to creating an app is the page with its key, at the form's
// address: reloading it would post the form again and make a second app.
// With the address replaced, a reload shows /developers, without the key.
if (document.getElementById('new-key') && window.location.pathname === '/developers/apps') {
  window.history.replaceState(null, '', '/developers');
}
