import { describe, expect, it } from 'vitest';
import {
  canonicalIp,
  checkDestination,
  classifyAddress,
  isAllowedHost,
} from '../../src/engine/steps/ssrf.js';

// Pure classification: nothing in this file resolves a name or opens a socket.
describe('classifyAddress', () => {
  it.each([
    ['169.254.169.254', 'link-local'],
    ['10.0.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['100.64.0.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['[::ffff:169.254.169.254]', 'link-local'],
    ['0177.0.0.1', 'loopback'],
    ['2130706433', 'loopback'],
    ['0x7f.1', 'loopback'],
    ['127.0.0.1', 'loopback'],
    ['127.1.2.3', 'loopback'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['198.18.0.1', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['2001:db8::1', 'reserved'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['2002:7f00:1::', 'loopback'],
    ['::127.0.0.1', 'reserved'],
    ['not-an-ip.example', 'reserved'],
  ])('%s is %s', (address, expected) => {
    expect(classifyAddress(address)).toBe(expected);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '2606:4700::1111',
    '2001:4860:4860::8888',
    '::ffff:8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
    '64:ff9b::808:808',
  ])('%s is public', (address) => {
    expect(classifyAddress(address)).toBe('public');
  });
});

describe('canonicalIp', () => {
  it('normalises the notations the URL parser accepts', () => {
    expect(canonicalIp('2130706433')).toBe('127.0.0.1');
    expect(canonicalIp('0x7f.1')).toBe('127.0.0.1');
    expect(canonicalIp('[::1]')).toBe('::1');
    expect(canonicalIp('example.com')).toBeUndefined();
  });
});

describe('isAllowedHost', () => {
  const allowlist = ['api.internal', '*.corp.example', '127.0.0.1', '::1'];

  it('matches exact names and IP literals, whatever their notation', () => {
    expect(isAllowedHost('api.internal', allowlist)).toBe(true);
    expect(isAllowedHost('API.Internal.', allowlist)).toBe(true);
    expect(isAllowedHost('127.0.0.1', allowlist)).toBe(true);
    expect(isAllowedHost('2130706433', allowlist)).toBe(true);
    expect(isAllowedHost('[::1]', allowlist)).toBe(true);
    expect(isAllowedHost('0:0:0:0:0:0:0:1', allowlist)).toBe(true);
    expect(isAllowedHost('127.0.0.2', allowlist)).toBe(false);
    expect(isAllowedHost('other.internal', allowlist)).toBe(false);
  });

  it('matches wildcard entries on subdomains only', () => {
    expect(isAllowedHost('a.corp.example', allowlist)).toBe(true);
    expect(isAllowedHost('a.b.corp.example', allowlist)).toBe(true);
    expect(isAllowedHost('corp.example', allowlist)).toBe(false);
    expect(isAllowedHost('evilcorp.example', allowlist)).toBe(false);
  });

  it('allows nothing with an empty allowlist', () => {
    expect(isAllowedHost('localhost', [])).toBe(false);
  });
});

describe('checkDestination', () => {
  it('lets public addresses through and refuses private ones unless allowlisted', () => {
    expect(checkDestination('example.com', '93.184.215.14', [])).toBeUndefined();
    expect(checkDestination('metadata', '169.254.169.254', [])?.addressClass).toBe('link-local');
    expect(checkDestination('db.internal', '10.1.2.3', ['db.internal'])).toBeUndefined();
    expect(checkDestination('other', '10.1.2.3', ['10.1.2.3'])).toBeUndefined();
  });
});
