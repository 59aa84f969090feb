import fp from 'fastify-plugin';
import { ResourceNotFoundError, ValidationFailedError } from '../../errors.js';
import { findUnstorableText } from '../../security/input-guard.js';

/**
 * Input sanitisation on every route: text Postgres cannot store never reaches it. In a path it
 * cannot be part of any id (404, as for any unknown id); elsewhere it is a 400.
 */
export const inputGuardPlugin = fp(
  async (app) => {
    app.addHook('preValidation', async (request) => {
      if (findUnstorableText(request.params, 'params').length > 0) {
        throw new ResourceNotFoundError(request.url.split('?')[0]);
      }
      const problems = [
        ...findUnstorableText(request.query, 'querystring'),
        ...findUnstorableText(request.body, ''),
      ];
      if (problems.length > 0) throw new ValidationFailedError(problems.slice(0, 1));
    });
  },
  { name: 'input-guard' },
);
