// Drug-code lookup (GET /v1/metadata/drug_code/{code}): a WHO ATC code's name and class.
import { h } from '../dom.js';
import { api, problemElement } from '../api.js';

export const drugPanel = {
  render() {
    const input = h('input', { id: 'drug-code', type: 'search', placeholder: 'N02BE01', autocomplete: 'off', required: true, maxlength: 16 });
    const out = h('div', { id: 'drug-result', 'aria-live': 'polite' });
    const form = h('form', { class: 'inline' }, h('div', {}, h('label', { for: 'drug-code' }, 'ATC code'), input), h('button', { type: 'submit' }, 'Look up'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const code = input.value.trim().toUpperCase();
      out.replaceChildren(h('p', { class: 'muted' }, 'Looking up…'));
      try {
        const d = await api('GET', `/v1/metadata/drug_code/${encodeURIComponent(code)}`);
        out.replaceChildren(h('dl', {},
          h('dt', {}, h('strong', {}, d.code)), h('dd', { class: 'drug-name' }, d.name),
          d.className ? h('dd', { class: 'muted' }, `${d.atcClass ? `${d.atcClass} · ` : ''}${d.className}`) : '',
          d.active === false ? h('dd', {}, 'No longer active') : '',
          d.stale ? h('dd', { class: 'muted' }, 'The reference list may be out of date.') : ''));
      } catch (err) {
        out.replaceChildren(problemElement(err));
      }
    });
    return h('section', { class: 'card', id: 'drug-panel', 'aria-labelledby': 'drug-h' }, h('h2', { id: 'drug-h' }, 'Drug code lookup'), form, out);
  },
};
