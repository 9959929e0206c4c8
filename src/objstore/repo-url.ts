// Whether a --repo names a bucket: apart from bucket-fs.ts, so that a backup to a directory, the
// common case, decides that without loading the S3 client and node's http, https and tls (issue 16).

/**
 * `s3:http://host:port/bucket/prefix` (restic's form) or `s3://host[:port]/bucket/prefix` (https)
 * -> the bucket URL s3.ts takes; undefined for anything else (a directory).
 */
export function bucketUrlOfRepo(repo: string): string | undefined {
  if (/^s3:https?:\/\//.test(repo)) return repo.slice(3);
  if (repo.startsWith('s3://')) return `https://${repo.slice(5)}`;
  return undefined;
}
