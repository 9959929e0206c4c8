// Whether a --repo names object storage, apart from the S3 client: every backup command asks this,
// and a repository in a directory never loads s3.ts (node:http, node:https and their streams, ~20M
// instructions of a backup's fixed cost).

/**
 * `s3:http://host:port/bucket/prefix` (restic's form) or `s3://host[:port]/bucket/prefix` (https)
 * -> the bucket URL s3.ts takes; undefined for anything else (a directory).
 */
export function bucketUrlOfRepo(repo: string): string | undefined {
  if (/^s3:https?:\/\//.test(repo)) return repo.slice(3);
  if (repo.startsWith('s3://')) return `https://${repo.slice(5)}`;
  return undefined;
}
