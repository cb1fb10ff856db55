/** The two sides of the pair. */
export type Side = 'blue' | 'green';
export const SIDES: readonly Side[] = ['blue', 'green'];
export const otherSide = (s: Side): Side => (s === 'blue' ? 'green' : 'blue');
