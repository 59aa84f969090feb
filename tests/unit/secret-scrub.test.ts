import { describe, expect, it } from 'vitest';
import { scrubSecrets, secretForms } from '../../src/engine/secrets.js';

describe('scrubSecrets', () => {
  const secret = 'p@ss "w/rd" <é>';

  it('replaces the value in every form an echo page writes it', () => {
    const echoes = [
      `Authorization: Bearer ${secret}`,
      JSON.stringify({ auth: `Bearer ${secret}` }),
      JSON.stringify(secret).replaceAll('/', '\\/'),
      `https://x.test/?t=${encodeURIComponent(secret)}`,
      `t=${encodeURIComponent(secret).replaceAll('%20', '+')}`,
      '<p>p@ss &quot;w/rd&quot; &lt;é&gt;</p>',
      '"p@ss \\"w\\/rd\\" <\\u00e9>"',
    ];
    for (const echo of echoes) {
      const scrubbed = scrubSecrets(echo, [secret]);
      expect(scrubbed, echo).toContain('[secret]');
      for (const form of secretForms(secret)) expect(scrubbed, echo).not.toContain(form);
    }
  });

  it('walks objects, arrays and keys, and leaves everything else alone', () => {
    const value = {
      status: 404,
      headers: { [`x-${secret}`]: [`a ${secret} b`] },
      body: { nested: [null, true, `${secret}${secret}`] },
    };
    expect(scrubSecrets(value, [secret])).toEqual({
      status: 404,
      headers: { 'x-[secret]': ['a [secret] b'] },
      body: { nested: [null, true, '[secret][secret]'] },
    });
    expect(scrubSecrets(value, [])).toBe(value);
  });

  it('leaves values under four characters alone: they would rewrite unrelated data', () => {
    expect(scrubSecrets({ n: '42 apples' }, ['42'])).toEqual({ n: '42 apples' });
  });
});

describe('scrubSecrets on a text cut short', () => {
  it('removes the start of a secret at the cut', () => {
    const cut = `HTTP 404: {"authorization":"Bearer sk-live-12…`;
    expect(scrubSecrets(cut, ['sk-live-123456'])).toBe(
      'HTTP 404: {"authorization":"Bearer [secret]…',
    );
    expect(scrubSecrets('ends with sk…', ['sk-live-123456'])).toBe('ends with sk…');
  });
});
