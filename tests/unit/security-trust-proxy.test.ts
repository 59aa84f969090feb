import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { trustProxyOption } from '../../src/security/trust-proxy.js';

describe('TRUST_PROXY', () => {
  it('trusts no proxy by default', () => {
    expect(loadConfig({}).TRUST_PROXY).toBe(false);
  });

  it('takes true, false, a hop count or a list of addresses and CIDRs', () => {
    expect(loadConfig({ TRUST_PROXY: 'true' }).TRUST_PROXY).toBe(true);
    expect(loadConfig({ TRUST_PROXY: 'FALSE' }).TRUST_PROXY).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '2' }).TRUST_PROXY).toBe(2);
    expect(loadConfig({ TRUST_PROXY: '127.0.0.1/8' }).TRUST_PROXY).toEqual(['127.0.0.1/8']);
    expect(
      loadConfig({ TRUST_PROXY: '10.0.0.0/8, 192.168.1.7,::1, fd00::/8,loopback' }).TRUST_PROXY,
    ).toEqual(['10.0.0.0/8', '192.168.1.7', '::1', 'fd00::/8', 'loopback']);
  });

  it.each([
    'yes',
    'ingress.local',
    '10.0.0.0/33',
    'fd00::/129',
    '300.1.1.1',
    '10.0.0.0/8,not-an-address',
    '10.0.0.0/',
    ',',
    '-1',
    '1.5',
    '101',
  ])('refuses %j, naming the variable', (value) => {
    let error: unknown;
    try {
      loadConfig({ TRUST_PROXY: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(`TRUST_PROXY=${JSON.stringify(value)}`);
  });

  it('gives Fastify a function for a hop count (it would read a number as "trust no one")', () => {
    const option = trustProxyOption(2);
    if (typeof option !== 'function') throw new Error('expected a function');
    expect(option('203.0.113.9', 0)).toBe(true);
    expect(option('203.0.113.9', 1)).toBe(true);
    expect(option('203.0.113.9', 2)).toBe(false);
    expect(trustProxyOption(['10.0.0.0/8'])).toEqual(['10.0.0.0/8']);
    expect(trustProxyOption(false)).toBe(false);
  });
});
