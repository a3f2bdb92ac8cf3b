// The S3 remote (@aws-sdk/client-s3): AWS S3 or any S3-compatible store through `endpoint`
// (path-style addressing). Objects above the part size go up as multipart uploads
// (@aws-sdk/lib-storage). Credentials: the SDK's default chain (AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, instance roles) — never the pipeline file.
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { RemoteError } from '../errors.js';
import { failureOfStatus, type RemoteBackend } from './backend.js';

export interface S3RemoteOptions {
  bucket: string;
  /** Key prefix (no leading slash); object paths are appended below it. */
  prefix: string;
  endpoint?: string;
  region: string;
  timeoutMs: number;
  /** Bytes per part; larger objects use multipart upload. */
  partSize: number;
  /** Parts of one object uploaded at once. */
  queueSize: number;
}

export class S3Remote implements RemoteBackend {
  readonly url: string;
  private readonly client: S3Client;
  private readonly prefix: string;

  constructor(private readonly options: S3RemoteOptions) {
    this.prefix = options.prefix === '' || options.prefix.endsWith('/') ? options.prefix : options.prefix + '/';
    this.url = `s3://${options.bucket}/${this.prefix}`;
    this.client = new S3Client({
      region: options.region,
      // S3-compatible stores (Swift s3api, older MinIO/Ceph) reject the SDK's default aws-chunked
      // checksum trailers; send checksums only where the operation requires them.
      ...(options.endpoint
        ? { endpoint: options.endpoint, forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' }
        : {}),
      // At most one retry: the caller decides what a failure means (run computes locally).
      maxAttempts: 2,
      requestHandler: { requestTimeout: options.timeoutMs, connectionTimeout: options.timeoutMs },
    });
  }

  private key(path: string): string {
    return this.prefix + path;
  }

  async stat(path: string, signal?: AbortSignal): Promise<{ size: number } | null> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.key(path) }), { abortSignal: signal });
      return { size: res.ContentLength ?? -1 };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.asRemoteError(err, 'HEAD', path, signal);
    }
  }

  async get(path: string, signal?: AbortSignal): Promise<Readable | null> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: this.key(path) }), { abortSignal: signal });
      if (!(res.Body instanceof Readable)) throw new RemoteError('protocol', `GET ${this.url}${path}: no body stream`);
      return res.Body;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.asRemoteError(err, 'GET', path, signal);
    }
  }

  async getFrom(path: string, from: number, signal?: AbortSignal): Promise<{ body: Readable; from: number } | null> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: this.key(path), Range: `bytes=${from}-` }), {
        abortSignal: signal,
      });
      if (!(res.Body instanceof Readable)) throw new RemoteError('protocol', `GET ${this.url}${path}: no body stream`);
      return { body: res.Body, from: res.ContentRange ? from : 0 };
    } catch (err) {
      if (isNotFound(err)) return null;
      if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 416) {
        const body = await this.get(path, signal);
        return body && { body, from: 0 };
      }
      throw this.asRemoteError(err, 'GET', path, signal);
    }
  }

  async putFile(path: string, file: string, size: number, signal?: AbortSignal): Promise<void> {
    try {
      if (size <= this.options.partSize) {
        // At most one part in memory: a buffer is signed in one piece and can be retried.
        await this.putBytes(path, await readFile(file, { signal }), signal);
        return;
      }
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.options.bucket, Key: this.key(path), Body: createReadStream(file) },
        partSize: this.options.partSize,
        queueSize: this.options.queueSize,
        // A failed multipart upload is aborted, so no parts linger (and cost) on the store.
        leavePartsOnError: false,
      });
      const abort = () => void upload.abort();
      signal?.addEventListener('abort', abort, { once: true });
      try {
        await upload.done();
      } finally {
        signal?.removeEventListener('abort', abort);
      }
    } catch (err) {
      throw this.asRemoteError(err, 'PUT', path, signal);
    }
  }

  async putBytes(path: string, data: Buffer, signal?: AbortSignal): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.options.bucket, Key: this.key(path), Body: data, ContentLength: data.length }), {
        abortSignal: signal,
      });
    } catch (err) {
      throw this.asRemoteError(err, 'PUT', path, signal);
    }
  }

  close(): void {
    this.client.destroy();
  }

  private asRemoteError(err: unknown, method: string, path: string, signal?: AbortSignal): unknown {
    if (err instanceof RemoteError || signal?.aborted) return err;
    const where = `${method} ${this.url}${path}`;
    if (err instanceof S3ServiceException) {
      const status = err.$metadata.httpStatusCode ?? 0;
      return new RemoteError(status ? failureOfStatus(status) : 'protocol', `${where}: ${err.name}${status ? ` (HTTP ${status})` : ''}: ${err.message}`, {
        cause: err,
      });
    }
    const e = err as NodeJS.ErrnoException;
    const code = e.code ?? e.name ?? '';
    if (/Timeout/i.test(code) || /timed? ?out/i.test(e.message ?? '')) return new RemoteError('timeout', `${where}: ${e.message}`, { cause: err });
    if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE'].includes(code)) {
      return new RemoteError('unreachable', `${where}: ${e.message}`, { cause: err });
    }
    if (e.name === 'CredentialsProviderError')
      return new RemoteError('denied', `${where}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)`, { cause: err });
    return new RemoteError('protocol', `${where}: ${e.message ?? String(err)}`, { cause: err });
  }
}

function isNotFound(err: unknown): boolean {
  if (!(err instanceof S3ServiceException)) return false;
  return err.$metadata.httpStatusCode === 404 && err.name !== 'NoSuchBucket';
}
