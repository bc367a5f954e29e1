export async function main(_argv: string[]): Promise<number> { throw new Error('not yet'); }
