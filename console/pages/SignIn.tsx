import { useState } from 'preact/hooks'
import { signIn } from '../api'

export function SignIn({ onDone }: { onDone: () => void }) {
  const [token, setToken] = useState('')
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)
  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault()
    setBusy(true)
    setError('')
    try {
      await signIn(token.trim())
      setToken('')
      onDone()
    } catch (err) {
      const status = (err as { status?: number }).status
      setError(status === 401 ? 'That token was refused. Use the node\'s api.token (outpost config get api.token).' : `Could not sign in: ${(err as Error).message}`)
    } finally {
      setBusy(false)
    }
  }
  return (
    <main class="signin" id="main">
      <form onSubmit={submit} class="card">
        <h1>outpost console</h1>
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)} autofocus />
        <button type="submit" disabled={busy}>Sign in</button>
        {error !== '' && <p role="alert" class="error">{error}</p>}
        <p class="hint">The token stays on this node: the browser keeps only a session cookie.</p>
      </form>
    </main>
  )
}
